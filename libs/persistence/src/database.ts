import type { DataSource, EntityManager } from 'typeorm';
import { PG_TRANSACTION_LIMITS, type DatabaseKind } from './data-source.js';
import { kindOf, pgTransaction, sqliteHandle, watchInserts } from './dialect.js';
import { migrateUnderLock } from './migrate.js';
import { PlannerStatistics } from './planner-statistics.js';
import { Repositories } from './repositories/index.js';
import { ANY_LIMIT_READ } from './repositories/limit.repository.js';
import { SqliteCheckpoints } from './sqlite-checkpoints.js';

export interface DatabaseOptions {
  /**
   * SQLite in a file: WAL checkpoints in a thread of their own (SqliteCheckpoints) instead of
   * inside the COMMIT that fills the WAL; `warn` is told if that thread fails and the serving
   * connection checkpoints for itself again. For a long-running server; a short command keeps
   * SQLite's default.
   */
  checkpointsAside?: { warn: (why: string) => void };
  /**
   * PostgreSQL: the task tables' planner statistics refreshed as they grow (PlannerStatistics);
   * `warn` is told if ANALYZE is refused. For a long-running server.
   */
  plannerStatistics?: { warn: (why: string) => void };
}

/** What a transaction does as it opens, in the message of its BEGIN (see Database.transaction). */
const PG_TRANSACTION_OPENING = `${PG_TRANSACTION_LIMITS}; ${ANY_LIMIT_READ}`;

/**
 * The connection, migrations and transactions. SQLite has one connection and one
 * writer, so there every transaction is serialized in this process (SQLite supports one
 * API process; run PostgreSQL for replicas).
 */
export class Database {
  readonly kind: DatabaseKind;
  private sqliteTail: Promise<unknown> = Promise.resolve();
  /** This process's clock minus the database server's (PostgreSQL; 0 for SQLite, which is in process). */
  private offsetMs = 0;
  private checkpoints: SqliteCheckpoints | null = null;
  private statistics: PlannerStatistics | null = null;

  constructor(
    private readonly dataSource: DataSource,
    private readonly options: DatabaseOptions = {},
  ) {
    this.kind = kindOf(dataSource.manager);
  }

  /** Connects and brings the schema up to date (on PostgreSQL one replica at a time: migrate.ts). */
  async initialize(): Promise<void> {
    await this.dataSource.initialize();
    if (this.kind === 'postgres') await migrateUnderLock(this.dataSource);
    else await this.dataSource.runMigrations({ transaction: 'each' });
    await this.syncClock();
    this.startCheckpoints();
    await this.startStatistics();
  }

  private async startStatistics(): Promise<void> {
    const watch = this.options.plannerStatistics;
    if (this.kind !== 'postgres' || !watch) return;
    const statistics = new PlannerStatistics(this.dataSource, watch.warn);
    await statistics.start();
    watchInserts(this.dataSource, (table, rows) => statistics.noteInserted(table, rows));
    this.statistics = statistics;
  }

  private startCheckpoints(): void {
    const file = this.dataSource.options.database;
    const aside = this.options.checkpointsAside;
    if (this.kind !== 'sqlite' || !aside || typeof file !== 'string' || file === ':memory:') return;
    this.checkpoints = new SqliteCheckpoints(file, sqliteHandle(this.dataSource), aside.warn);
    this.checkpoints.start();
  }

  /**
   * The time by the database server's clock, so every replica sets and judges leases,
   * retries and timeouts by one clock however far the hosts' clocks drift apart. Read
   * from this process's clock and the offset last measured (syncClock), not by a query.
   */
  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** Measures the offset to the server's clock (the midpoint of the round trip). Returns: it, in ms. */
  async syncClock(): Promise<number> {
    if (this.kind !== 'postgres') return 0;
    const before = Date.now();
    const rows = await this.dataSource.query<{ ms: number }[]>(
      'SELECT (extract(epoch from clock_timestamp()) * 1000)::float8 AS ms',
    );
    const after = Date.now();
    this.offsetMs = Math.round(Number(rows[0].ms) - (before + after) / 2);
    return this.offsetMs;
  }

  async close(): Promise<void> {
    await this.checkpoints?.stop();
    this.checkpoints = null;
    await this.statistics?.stop();
    this.statistics = null;
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }

  async ping(): Promise<void> {
    await this.dataSource.query('SELECT 1');
  }

  /** Repositories for reads outside a transaction (each statement on its own). */
  read(): Repositories {
    return new Repositories(this.dataSource.manager, this.now(), () => this.now());
  }

  /**
   * Runs `fn` in one transaction, its repositories at one clock (`now` when given). On
   * PostgreSQL the transaction first sets its own bounds (PG_TRANSACTION_LIMITS) and reads
   * whether any concurrency limit exists, in its BEGIN's message (PG_TRANSACTION_OPENING).
   */
  async transaction<T>(fn: (repos: Repositories) => Promise<T>, now?: number): Promise<T> {
    // Its task events are kept and written together just before it commits (or, on
    // PostgreSQL, by a lease's claim: TransitionRepository.claim).
    const inRepos = async (em: EntityManager, opened?: Promise<Record<string, unknown>>) => {
      const repos = new Repositories(em, now ?? this.now(), () => this.now(), true);
      if (opened) repos.limits.opened(opened);
      const value = await fn(repos);
      // The events' statement, when there are any, is the transaction's last: its COMMIT goes with it.
      await repos.events.flush({ last: true });
      return value;
    };
    if (this.kind === 'postgres') {
      const value = await pgTransaction(this.dataSource, PG_TRANSACTION_OPENING, inRepos);
      this.statistics?.afterCommit();
      return value;
    }
    const run = () => this.dataSource.transaction(inRepos);
    const next = this.sqliteTail.then(run);
    this.sqliteTail = next.catch(() => undefined);
    return next;
  }
}
