import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Tables whose rows never stop coming (their sequence is never reset, however many rows retention removes). */
const TABLES = ['task_event', 'workflow_event', 'task_log', 'audit', 'idempotency'];

/**
 * 64-bit ids for the tables that grow without bound: a busy deployment writes 2^31 events
 * or log pieces in months. PostgreSQL: each id column and its sequence become BIGINT, every
 * row kept. That rewrites each table under an exclusive lock, so the migration takes as long
 * as copying these tables (docs/architecture.md). SQLite's INTEGER PRIMARY KEY is 64-bit
 * already. Safe next to the previous version during a rolling upgrade: it reads these ids
 * only to pass them back (cursors, seqs), and node-postgres hands it the wider ones as
 * strings, which it passes back as they are.
 */
export class WideIds1700000000024 implements MigrationInterface {
  name = 'WideIds1700000000024';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.options.type !== 'postgres') return;
    for (const table of TABLES) {
      await q.query(`ALTER TABLE ${table} ALTER COLUMN id TYPE bigint`);
      await q.query(`ALTER SEQUENCE ${await sequenceOf(q, table)} AS bigint`);
    }
  }

  /** Refused once a sequence has gone past 2^31 - 1 (its values would not fit back). */
  async down(q: QueryRunner): Promise<void> {
    if (q.connection.options.type !== 'postgres') return;
    for (const table of TABLES) {
      await q.query(`ALTER SEQUENCE ${await sequenceOf(q, table)} AS integer`);
      await q.query(`ALTER TABLE ${table} ALTER COLUMN id TYPE integer`);
    }
  }
}

/** The sequence behind a table's serial `id`, as a qualified name. */
async function sequenceOf(q: QueryRunner, table: string): Promise<string> {
  const rows = (await q.query(`SELECT pg_get_serial_sequence($1, 'id') AS seq`, [table])) as { seq: string | null }[];
  if (!rows[0]?.seq) throw new Error(`${table}.id has no sequence`);
  return rows[0].seq;
}
