import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createDataSource, Database } from '@tagflow/persistence';
import type { DataSource } from 'typeorm';
import { DATABASE, freshDatabaseUrl } from './support/harness.js';

/**
 * Connections used the way a transaction-pooling PgBouncer hands them out: a transaction
 * carries its own bounds (they are no startup parameters, which PgBouncer refuses) and leaves
 * nothing behind in the session for whoever gets the connection next. PostgreSQL only
 * (scripts/test.sh); `npm test` runs it directly and through PgBouncer.
 */
describe('PostgreSQL connections without session state', () => {
  let dataSource: DataSource;
  let db: Database;
  let holder: pg.Client;
  beforeAll(async () => {
    if (DATABASE !== 'postgres') throw new Error('the pooling suite needs TEST_DATABASE=postgres');
    const url = await freshDatabaseUrl();
    dataSource = createDataSource(url, { preparedStatements: process.env.TEST_PG_PREPARED === 'on' });
    db = new Database(dataSource);
    await db.initialize();
    holder = new pg.Client({ connectionString: url });
    await holder.connect();
  });
  afterAll(async () => {
    await holder?.end();
    await db?.close();
  });

  it('gives up on a lock held elsewhere after lock_timeout (10 s), set by the transaction itself', async () => {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE workflow IN ACCESS EXCLUSIVE MODE');
    const started = Date.now();
    try {
      const outcome = await db
        .transaction((r) => r.workflows.lock('00000000-0000-4000-8000-000000000000'))
        .then(
          () => 'granted',
          (e: { driverError?: { code?: string } }) => e.driverError?.code,
        );
      expect(outcome).toBe('55P03'); // lock_not_available
      expect(Date.now() - started).toBeGreaterThan(9_000);
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await holder.query('ROLLBACK');
    }
  }, 30_000);

  it('leaves no setting behind on the connection once its transaction is over', async () => {
    expect(await db.transaction((r) => r.workflows.get('00000000-0000-4000-8000-000000000000'))).toBeNull();
    const [row] = await dataSource.query<Record<string, string>[]>(
      `SELECT current_setting('statement_timeout') AS statement, current_setting('lock_timeout') AS lock,
              current_setting('idle_in_transaction_session_timeout') AS idle`,
    );
    expect(row).toEqual({ statement: '0', lock: '0', idle: '0' });
  });
});
