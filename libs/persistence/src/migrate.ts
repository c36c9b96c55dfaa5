import { DataSource, MigrationExecutor, type Migration } from 'typeorm';

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
 * It runs on a connection of its own, without the client-side query timeout of the API's
 * pool (data-source.ts): a replica waits for the lock as long as the migration takes.
 *
 * Takes: the API's DataSource (its options). Returns: the migrations this call ran (none
 * when another replica had run them).
 */
export async function migrateUnderLock(main: DataSource): Promise<Migration[]> {
  if (main.options.type !== 'postgres') throw new Error('migrateUnderLock is for PostgreSQL');
  const extra: Record<string, unknown> = { ...(main.options.extra as Record<string, unknown>), max: 1 };
  delete extra.query_timeout;
  const dataSource = new DataSource({ ...main.options, extra });
  await dataSource.initialize();
  const runner = dataSource.createQueryRunner();
  try {
    await runner.startTransaction();
    // Nor is a migration that rewrites a large table cut off half-way by a server-side bound.
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
    await dataSource.destroy();
  }
}
