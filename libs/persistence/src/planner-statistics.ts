import type { DataSource } from 'typeorm';
import { pgTransaction } from './dialect.js';

/** The tables the engine looks up by workflow, name, tag and dependency key. */
export const WATCHED_TABLES = ['task', 'task_dep', 'task_tag'] as const;
/** Rows a table gains before its statistics are refreshed at all: below this every plan is cheap. */
export const REFRESH_MIN_ROWS = 1000;
/** The share of its size a table gains, inserted by this process, before the server's counters are read. */
const CUE_SHARE = 4;
/** Reads of the server's counters a table gets at most, once per this long. */
const CHECK_EVERY_MS = 1000;
/**
 * Bounds of the ANALYZE transaction: it gives up on a lock held elsewhere (a migration,
 * another replica's ANALYZE, a VACUUM) within a second rather than queue behind it, and
 * the statement itself after half a minute.
 */
const ANALYZE_LIMITS = 'SET LOCAL lock_timeout = 1000; SET LOCAL statement_timeout = 30000';

/**
 * Whether a table is due for a refresh: autovacuum's own rule (rows changed since the last
 * ANALYZE against the table's size then) with a scale of 1 instead of 0.1 (the table has
 * changed by its whole size, at least REFRESH_MIN_ROWS), applied after a commit instead of
 * once a minute.
 */
export function refreshDue(size: number, changed: number): boolean {
  return changed >= Math.max(REFRESH_MIN_ROWS, size);
}

/** A table's size as its statistics have it, and the rows changed since they were taken (every replica's, committed). */
interface TableCounters {
  size: number;
  changed: number;
}

/**
 * Fresh planner statistics for the task tables as they grow (PostgreSQL only).
 *
 * PostgreSQL plans each statement by its statistics, which autovacuum refreshes at most once
 * a minute, and only once a tenth of a table has changed. Until then a workflow that has just
 * received thousands of tasks looks to the planner like one with none (its id is in no
 * statistic), and so does a state that has just filled up. The lookups by workflow and name,
 * or by id and state, then walk every task of the workflow (or in the state) through the
 * index on (workflow_id, state) or (state, …) instead of probing the unique key: 10-15 ms a
 * statement at 100,000 tasks instead of 1-2, and an accept that slows with the square of the
 * workflow.
 *
 * This counts the rows this process inserts into WATCHED_TABLES. Once a table has gained a
 * quarter of its size here, the next commit reads the server's counters, which hold every
 * replica's committed changes and see ANALYZE runs by anyone (autovacuum, another replica),
 * and runs ANALYZE when refreshDue says so: one table at a time, on a connection of the pool,
 * outside any request's transaction, in a transaction of its own (ANALYZE_LIMITS).
 *
 * The rule is the table's: a workflow small beside a large table (10,000 tasks added to ten
 * million) changes it too little, and its lookups are left to autovacuum's statistics, which
 * will then still miss it; they walk that workflow's own tasks, not the table's.
 *
 * ANALYZE needs the role to own the tables (as the role that migrates them does) or, from
 * PostgreSQL 17, the MAINTAIN privilege; without either the server skips it with a warning
 * and no error, so start() asks first, and a role that may not is told once (`warn`) and
 * the tables are left to autovacuum.
 */
export class PlannerStatistics {
  /** Per table: its size as the statistics we last read had it. */
  private readonly size = new Map<string, number>();
  /** Per table: rows this process inserted since those statistics were taken (as far as it saw). */
  private readonly inserted = new Map<string, number>();
  /** Per table: `inserted` when its counters were last read, and when. */
  private readonly checked = new Map<string, { inserted: number; at: number }>();
  private running: Promise<void> | null = null;
  private off = false;
  private failing = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly warn: (why: string) => void,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Reads each table's size, after checking the role may analyse them. */
  async start(): Promise<void> {
    const refused = await this.refusedTables();
    if (refused.length > 0) {
      this.off = true;
      this.warn(
        `this role may not ANALYZE ${refused.join(', ')} (it owns neither them nor, on PostgreSQL 17, MAINTAIN on them): their planner statistics are left to autovacuum`,
      );
      return;
    }
    for (const table of WATCHED_TABLES) this.size.set(table, (await this.counters(table)).size);
  }

  /** Counts rows inserted into `table` (by this process, committed or not). */
  noteInserted(table: string, rows: number): void {
    if (this.size.has(table)) this.inserted.set(table, (this.inserted.get(table) ?? 0) + rows);
  }

  /**
   * After a commit: checks the first table this process has grown by a quarter of its size
   * since its last check (not twice within CHECK_EVERY_MS), unless a check runs already;
   * after a check that went through, the next table's.
   */
  afterCommit(): void {
    if (this.off || this.running) return;
    const now = this.clock();
    const cued = WATCHED_TABLES.find((t) => {
      const last = this.checked.get(t) ?? { inserted: 0, at: -Infinity };
      const grown = (this.inserted.get(t) ?? 0) - last.inserted;
      return grown >= Math.max(REFRESH_MIN_ROWS, this.size.get(t) ?? 0) / CUE_SHARE && now - last.at >= CHECK_EVERY_MS;
    });
    if (!cued) return;
    this.running = this.check(cued, now)
      .catch(() => false)
      .then((done) => {
        this.running = null;
        if (done) this.afterCommit();
      });
  }

  /** Waits until no check or refresh is under way. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Waits for a refresh under way (at most ANALYZE_LIMITS' half minute); none starts after this. */
  async stop(): Promise<void> {
    this.off = true;
    await this.settled();
  }

  /**
   * Reads the table's counters and analyses it if due: by every replica's committed changes,
   * or by this process's own inserts when those are more (the server's counters are flushed
   * up to a second late). Returns: whether the check went through.
   */
  private async check(table: string, now: number): Promise<boolean> {
    const inserted = this.inserted.get(table) ?? 0;
    try {
      const counters = await this.counters(table);
      // Statistics taken by someone else (autovacuum, another replica) hold what we inserted before.
      const ours = counters.size === this.size.get(table) ? inserted : 0;
      if (refreshDue(counters.size, Math.max(counters.changed, ours))) {
        await this.analyze(table);
        this.resetTo(table, (await this.counters(table)).size, inserted, now);
      } else if (ours === 0) {
        this.resetTo(table, counters.size, inserted, now);
      } else {
        this.checked.set(table, { inserted, at: now });
      }
      this.failing = false;
      return true;
    } catch (e) {
      this.checked.set(table, { inserted: this.checked.get(table)?.inserted ?? 0, at: now });
      // Told once for a run of failures; a later commit tries again.
      if (!this.failing)
        this.warn(`ANALYZE ${table} failed (${(e as Error).message}); it is tried again after a later commit`);
      this.failing = true;
      return false;
    }
  }

  /** New statistics of `size` rows: the rows inserted until the check that saw them are in them. */
  private resetTo(table: string, size: number, inserted: number, now: number): void {
    this.size.set(table, size);
    this.inserted.set(table, (this.inserted.get(table) ?? 0) - inserted);
    this.checked.set(table, { inserted: 0, at: now });
  }

  private async analyze(table: string): Promise<void> {
    await pgTransaction(this.dataSource, ANALYZE_LIMITS, (em) => em.query(`ANALYZE ${table}`));
  }

  private async counters(table: string): Promise<TableCounters> {
    const rows = await this.dataSource.query<{ size: number | string; changed: number | string | null }[]>(
      `SELECT c.reltuples AS size, s.n_mod_since_analyze AS changed
         FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
        WHERE c.oid = to_regclass($1)`,
      [table],
    );
    // reltuples is -1 before a table's first VACUUM or ANALYZE.
    return { size: Math.max(0, Number(rows[0]?.size ?? 0)), changed: Number(rows[0]?.changed ?? 0) };
  }

  /** The watched tables this role may not analyse. */
  private async refusedTables(): Promise<string[]> {
    const rows = await this.dataSource.query<{ name: string; allowed: boolean }[]>(
      `SELECT u.t AS name,
              pg_has_role(c.relowner, 'USAGE')
              OR CASE WHEN current_setting('server_version_num')::int >= 170000
                      THEN has_table_privilege(c.oid, 'MAINTAIN') ELSE false END AS allowed
         FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) JOIN pg_class c ON c.oid = to_regclass(u.t)
        ORDER BY u.n`,
      [[...WATCHED_TABLES]],
    );
    return rows.filter((r) => !r.allowed).map((r) => r.name);
  }
}
