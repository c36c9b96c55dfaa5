import { describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { PlannerStatistics, REFRESH_MIN_ROWS, refreshDue } from './planner-statistics.js';

/**
 * A server as far as PlannerStatistics asks it: per table, the size its statistics have
 * and the rows changed since (`tables`), whether this role may analyse it (`refused`), and
 * ANALYZE, which records the table, takes its rows into the statistics, can be held until
 * `release()` and fails with `fail` when set.
 */
function fakeServer(tables: Record<string, { size: number; changed: number }>, refused: string[] = []) {
  const analysed: string[] = [];
  let hold: Promise<void> | null = null;
  let release = () => {};
  const state = { fail: null as null | string, counterReads: 0 };
  const query = async (text: string, params?: unknown[]) => {
    if (text.includes('pg_has_role'))
      return (params![0] as string[]).map((name) => ({ name, allowed: !refused.includes(name) }));
    if (text.includes('n_mod_since_analyze')) {
      state.counterReads++;
      return [tables[params![0] as string] ?? { size: -1, changed: 0 }];
    }
    const analyse = /^ANALYZE (\w+)$/.exec(text);
    if (analyse) {
      if (hold) await hold;
      if (state.fail) throw new Error(state.fail);
      const t = tables[analyse[1]];
      tables[analyse[1]] = { size: t.size + t.changed, changed: 0 };
      analysed.push(analyse[1]);
    }
    return [];
  };
  const source = {
    query,
    createQueryRunner: () => ({ query, connect: async () => ({ query }), manager: { query }, release: async () => {} }),
  };
  return {
    source: source as unknown as DataSource,
    analysed,
    state,
    holdAnalyze() {
      hold = new Promise((r) => (release = r));
    },
    release() {
      hold = null;
      release();
    },
  };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('PlannerStatistics', () => {
  it('is due once a table has changed by its size (and REFRESH_MIN_ROWS)', () => {
    expect(refreshDue(0, REFRESH_MIN_ROWS - 1)).toBe(false);
    expect(refreshDue(0, REFRESH_MIN_ROWS)).toBe(true);
    expect(refreshDue(50_000, 49_999)).toBe(false);
    expect(refreshDue(50_000, 50_000)).toBe(true);
  });

  it("reads the server's counters once this process has grown a table by a quarter, and analyses it when due", async () => {
    const tables = {
      task: { size: 4000, changed: 0 },
      task_tag: { size: 0, changed: 0 },
      task_dep: { size: 0, changed: 0 },
    };
    const server = fakeServer(tables);
    let now = 0;
    const stats = new PlannerStatistics(
      server.source,
      () => {},
      () => now,
    );
    await stats.start();
    const reads = server.state.counterReads;

    stats.noteInserted('task', 999);
    stats.noteInserted('task_event', 1_000_000); // not watched
    stats.afterCommit();
    await stats.settled();
    expect(server.state.counterReads).toBe(reads);

    // A quarter: the counters are read, but other replicas' rows are not yet enough.
    stats.noteInserted('task', 1);
    tables.task.changed = 3000;
    stats.afterCommit();
    await stats.settled();
    expect(server.state.counterReads).toBe(reads + 1);
    expect(server.analysed).toEqual([]);

    // Another quarter, and every replica's rows together have doubled the table.
    stats.noteInserted('task', 1000);
    tables.task.changed = 4000;
    stats.afterCommit();
    await stats.settled();
    expect(server.state.counterReads).toBe(reads + 1); // not twice in one second
    now += 1000;
    server.holdAnalyze();
    stats.afterCommit();
    stats.afterCommit(); // while one runs, nothing else starts
    await settle();
    expect(server.analysed).toEqual([]);
    server.release();
    await stats.settled();
    expect(server.analysed).toEqual(['task']);

    // Measured afresh from the size the statistics now have (8,000 rows).
    now += 1000;
    stats.noteInserted('task', 1999);
    stats.afterCommit();
    await stats.settled();
    expect(server.state.counterReads).toBe(reads + 3);
    stats.noteInserted('task_tag', 250);
    tables.task_tag.changed = 1000;
    stats.afterCommit();
    await stats.stop();
    expect(server.analysed).toEqual(['task', 'task_tag']);
    stats.noteInserted('task_tag', 10_000);
    tables.task_tag.changed = 10_000;
    now += 1000;
    stats.afterCommit();
    await stats.settled();
    expect(server.analysed).toEqual(['task', 'task_tag']); // stopped
  });

  it('leaves the tables to autovacuum when the role may not analyse them, and says so once', async () => {
    const server = fakeServer({ task: { size: 0, changed: 5000 } }, ['task', 'task_tag']);
    const warned: string[] = [];
    const stats = new PlannerStatistics(server.source, (w) => warned.push(w));
    await stats.start();
    stats.noteInserted('task', 5000);
    stats.afterCommit();
    await stats.stop();
    expect(server.analysed).toEqual([]);
    expect(warned).toEqual([
      'this role may not ANALYZE task, task_tag (it owns neither them nor, on PostgreSQL 17, MAINTAIN on them): their planner statistics are left to autovacuum',
    ]);
  });

  it('tries a failed refresh again after a later commit, and says so once', async () => {
    const server = fakeServer({ task: { size: 0, changed: 5000 } });
    const warned: string[] = [];
    let now = 0;
    const stats = new PlannerStatistics(
      server.source,
      (w) => warned.push(w),
      () => now,
    );
    await stats.start();
    server.state.fail = 'canceling statement due to lock timeout';
    stats.noteInserted('task', 5000);
    stats.afterCommit();
    await stats.settled();
    expect(warned).toEqual([
      'ANALYZE task failed (canceling statement due to lock timeout); it is tried again after a later commit',
    ]);
    now += 1000;
    stats.afterCommit();
    await stats.settled();
    expect(warned).toHaveLength(1);
    server.state.fail = null;
    now += 1000;
    stats.afterCommit();
    await stats.stop();
    expect(server.analysed).toEqual(['task']);
  });
});
