import type { DataSource } from 'typeorm';

/** The tables the engine looks up by workflow, name, tag and dependency key. */
export const WATCHED_TABLES = ['task', 'task_dep', 'task_tag'] as const;
/** Rows a table gains before its statistics are refreshed at all: below this every plan is cheap. */
export const REFRESH_MIN_ROWS = 1000;

/**
 * Whether a table that held `base` rows when its statistics were last read, and has gained
 * `inserted` since, is due for a refresh: once it has at least doubled (and gained
 * REFRESH_MIN_ROWS). Doubling keeps the planner's picture of any one workflow within a factor
 * of two of the truth, for a number of ANALYZE runs that grows with the logarithm of the table.
 */
export function refreshDue(base: number, inserted: number): boolean {
  return inserted >= Math.max(REFRESH_MIN_ROWS, base);
}

/** PostgreSQL's code for a statement the role may not run (ANALYZE of a table it does not own). */
const INSUFFICIENT_PRIVILEGE = '42501';

/**
 * Fresh planner statistics for the task tables after they grow fast (PostgreSQL only).
 *
 * PostgreSQL plans each statement by its statistics, which autovacuum refreshes at most once
 * a minute, and only once a tenth of a table has changed. Until then a workflow that has just
 * received thousands of tasks looks to the planner like one with none (its id is in no
 * statistic), and so does a state that has just filled up. The lookups by workflow and name,
 * or by id and state, then walk every task of the workflow (or in the state) through the
 * index on (workflow_id, state) or (state, …) instead of probing the unique key: 10-15 ms a
 * statement at 100,000 tasks instead of 1-2, and an accept that slows with the square of the
 * workflow. This counts the rows this process inserts into WATCHED_TABLES and, after a
 * commit, runs ANALYZE on a table that has doubled since its statistics were last read (one
 * table at a time, on its own connection, never in a request's way).
 *
 * ANALYZE needs the role to own the tables, as the role that migrates them does; a role
 * that may not is told once (`warn`) and the tables are left to autovacuum.
 */
export class PlannerStatistics {
  private readonly base = new Map<string, number>();
  private readonly inserted = new Map<string, number>();
  private running: Promise<void> | null = null;
  private off = false;
  private failing = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly warn: (why: string) => void,
  ) {}

  /** Reads each table's size as its statistics last saw it. */
  async start(): Promise<void> {
    for (const table of WATCHED_TABLES) this.base.set(table, await this.counted(table));
  }

  /** Counts rows inserted into `table` (by this process, committed or not). */
  noteInserted(table: string, rows: number): void {
    if (this.base.has(table)) this.inserted.set(table, (this.inserted.get(table) ?? 0) + rows);
  }

  /** After a commit: starts a refresh of the first table due, unless one runs already. */
  afterCommit(): void {
    if (this.off || this.running) return;
    const due = WATCHED_TABLES.find((t) => refreshDue(this.base.get(t) ?? 0, this.inserted.get(t) ?? 0));
    if (!due) return;
    this.running = this.refresh(due).then((done) => {
      this.running = null;
      // The next table due, if any; after a failure, not before the next commit.
      if (done) this.afterCommit();
    });
  }

  /** Waits until no refresh is under way (one that ends may start the next table's). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Waits for a refresh under way; none starts after this. */
  async stop(): Promise<void> {
    this.off = true;
    await this.settled();
  }

  /** Returns: whether the table was analysed. */
  private async refresh(table: string): Promise<boolean> {
    const seen = this.inserted.get(table) ?? 0;
    this.inserted.set(table, 0);
    try {
      await this.dataSource.query(`ANALYZE ${table}`);
      this.base.set(table, await this.counted(table));
      this.failing = false;
      return true;
    } catch (e) {
      const err = e as { message?: string; driverError?: { code?: string }; code?: string };
      const code = err.driverError?.code ?? err.code;
      if (code === INSUFFICIENT_PRIVILEGE) {
        this.off = true;
        this.warn(
          `ANALYZE ${table} refused (${err.message}): the task tables' planner statistics are left to autovacuum`,
        );
        return false;
      }
      // Counted again, for the next commit to try; told once for a run of failures.
      this.inserted.set(table, (this.inserted.get(table) ?? 0) + seen);
      if (!this.failing) this.warn(`ANALYZE ${table} failed (${err.message}); it is tried again after a later commit`);
      this.failing = true;
      return false;
    }
  }

  /** The table's row count as its statistics have it (0 before it was ever analysed). */
  private async counted(table: string): Promise<number> {
    const rows = await this.dataSource.query<{ n: number | string }[]>(
      'SELECT reltuples AS n FROM pg_class WHERE oid = to_regclass($1)',
      [table],
    );
    return Math.max(0, Number(rows[0]?.n ?? 0));
  }
}
