import { describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { PlannerStatistics, REFRESH_MIN_ROWS, refreshDue } from './planner-statistics.js';

/**
 * A data source that answers the two statements PlannerStatistics speaks: the size a table's
 * statistics have (`sizes`), and ANALYZE, which it records, holds until `release()` when told
 * to, and fails with `fail` when set.
 */
function fakeSource(sizes: Record<string, number>) {
  const analysed: string[] = [];
  let hold: Promise<void> | null = null;
  let release = () => {};
  const state = { fail: null as null | { code: string; message: string } };
  const query = async (text: string, params?: unknown[]) => {
    const analyse = /^ANALYZE (\w+)$/.exec(text);
    if (analyse) {
      if (hold) await hold;
      if (state.fail) throw Object.assign(new Error(state.fail.message), { driverError: { code: state.fail.code } });
      analysed.push(analyse[1]);
      return [];
    }
    return [{ n: sizes[params![0] as string] ?? -1 }];
  };
  return {
    source: { query } as unknown as DataSource,
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
  it('is due once a table has gained REFRESH_MIN_ROWS and at least doubled', () => {
    expect(refreshDue(0, REFRESH_MIN_ROWS - 1)).toBe(false);
    expect(refreshDue(0, REFRESH_MIN_ROWS)).toBe(true);
    expect(refreshDue(50_000, 49_999)).toBe(false);
    expect(refreshDue(50_000, 50_000)).toBe(true);
  });

  it('analyses, after a commit, the tables that doubled since their statistics were read, one at a time', async () => {
    const sizes: Record<string, number> = { task: 4000, task_tag: -1, task_dep: 0 };
    const db = fakeSource(sizes);
    const stats = new PlannerStatistics(db.source, () => {});
    await stats.start();
    stats.noteInserted('task', 3999);
    stats.noteInserted('task_event', 1_000_000); // not watched
    stats.afterCommit();
    await settle();
    expect(db.analysed).toEqual([]);

    stats.noteInserted('task', 1);
    stats.noteInserted('task_tag', 8000);
    db.holdAnalyze();
    stats.afterCommit();
    stats.afterCommit(); // while one runs, nothing else starts
    await settle();
    expect(db.analysed).toEqual([]);
    sizes.task = 8000;
    db.release();
    await stats.settled();
    expect(db.analysed).toEqual(['task', 'task_tag']);

    // Counted afresh from the size the statistics now have (8,000 rows).
    stats.noteInserted('task', 7999);
    stats.afterCommit();
    await stats.settled();
    expect(db.analysed).toEqual(['task', 'task_tag']);
    stats.noteInserted('task', 1);
    stats.afterCommit();
    await stats.stop();
    expect(db.analysed).toEqual(['task', 'task_tag', 'task']);
  });

  it('leaves the tables to autovacuum when the role may not analyse them, and says so once', async () => {
    const db = fakeSource({});
    const warned: string[] = [];
    const stats = new PlannerStatistics(db.source, (w) => warned.push(w));
    await stats.start();
    db.state.fail = { code: '42501', message: 'must be owner of table task' };
    stats.noteInserted('task', 5000);
    stats.afterCommit();
    await stats.settled();
    stats.noteInserted('task', 5000);
    db.state.fail = null;
    stats.afterCommit();
    await stats.stop();
    expect(db.analysed).toEqual([]);
    expect(warned).toEqual([
      "ANALYZE task refused (must be owner of table task): the task tables' planner statistics are left to autovacuum",
    ]);
  });

  it('tries a failed refresh again after a later commit, not at once, and says so once', async () => {
    const db = fakeSource({});
    const warned: string[] = [];
    const stats = new PlannerStatistics(db.source, (w) => warned.push(w));
    await stats.start();
    db.state.fail = { code: '57P01', message: 'terminating connection' };
    stats.noteInserted('task', 5000);
    stats.afterCommit();
    await stats.settled();
    expect(warned).toEqual(['ANALYZE task failed (terminating connection); it is tried again after a later commit']);
    stats.afterCommit();
    await stats.settled();
    expect(warned).toHaveLength(1);
    db.state.fail = null;
    stats.afterCommit();
    await stats.stop();
    expect(db.analysed).toEqual(['task']);
  });
});
