import { MigrationExecutor, type DataSource, type Migration } from 'typeorm';

/**
 * The key of the advisory lock migrations run under: "tagflow" in ASCII, as a 64-bit
 * number. Fixed for good: replicas of every version must agree on it.
 */
export const MIGRATION_LOCK_KEY = '32758194026344311';

/**
 * PostgreSQL: runs the pending migrations in one transaction that first takes a
 * transaction-scoped advisory lock, so replicas that start together migrate one at a time:
 * the first migrates, the others wait for its commit and then find nothing left to do.
 * TypeORM takes no lock of its own. The lock is the transaction's, not the session's, so it
 * holds through PgBouncer in transaction mode and ends with the transaction however that
 * ends (a replica that dies while migrating rolls back and releases it).
 *
 * Takes: an initialized DataSource. Returns: the migrations this call ran (none when
 * another replica had run them).
 */
export async function migrateUnderLock(dataSource: DataSource): Promise<Migration[]> {
  const runner = dataSource.createQueryRunner();
  try {
    await runner.startTransaction();
    // Waiting replicas wait as long as the migration takes, and a migration that rewrites a
    // large table is not cut off half-way: no timeout but the server's own for this transaction.
    await runner.query('SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0');
    await runner.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    const executor = new MigrationExecutor(dataSource, runner);
    executor.transaction = 'none'; // inside the transaction above, which holds the lock
    const ran = await executor.executePendingMigrations();
    await runner.commitTransaction();
    return ran;
  } catch (e) {
    if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
    throw e;
  } finally {
    await runner.release();
  }
}
