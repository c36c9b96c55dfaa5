import { TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The transaction that wrote each event (PostgreSQL's xid; 0 on SQLite, whose one writer
 * commits in id order). On PostgreSQL ids are drawn before commit, so a follower reading by
 * id alone could pass an event whose transaction commits later; read by (tx, id) below the
 * oldest running transaction, no event is passed. Rows written before this have 0.
 */
export class EventStreamOrder1700000000015 implements MigrationInterface {
  name = 'EventStreamOrder1700000000015';

  async up(q: QueryRunner): Promise<void> {
    const postgres = q.connection.options.type === 'postgres';
    for (const table of ['task_event', 'workflow_event']) {
      await q.addColumn(table, new TableColumn({ name: 'tx', type: 'bigint', isNullable: false, default: 0 }));
      if (postgres)
        await q.query(`ALTER TABLE ${table} ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint)`);
      await q.createIndex(
        table,
        new TableIndex({ name: `ix_${table}_stream`, columnNames: ['workflow_id', 'tx', 'id'] }),
      );
    }
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ['task_event', 'workflow_event']) {
      await q.dropIndex(table, `ix_${table}_stream`);
      await q.dropColumn(table, 'tx');
    }
  }
}
