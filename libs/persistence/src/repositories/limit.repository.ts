import type { EntityManager } from 'typeorm';
import { TASK_MARKS } from '@tagflow/domain';
import { TaskEntity } from '../entities/task.entity.js';
import { forUpdate, kindOf, sql, type ClaimJob } from '../dialect.js';
import { hydrate } from '../rows.js';

/** A concurrency limit: at most `max_running` RUNNING tasks carrying `tag`, in a namespace (`workflow_id` '') or one workflow. */
export interface LimitRow {
  namespace: string;
  /** '' for a namespace-wide limit. */
  workflow_id: string;
  tag: string;
  max_running: number;
  created_at: number;
  updated_at: number;
}

export type LimitScope = Pick<LimitRow, 'namespace' | 'workflow_id' | 'tag'>;

/** How a READY task names the limit that holds it (`held_limit`): `<workflow id or ''>|<tag>` (`|` is in no tag). */
export function heldKey(workflowId: string, tag: string): string {
  return `${workflowId}|${tag}`;
}

function scopeOfHeld(namespace: string, held: string): LimitScope {
  const at = held.indexOf('|');
  return { namespace, workflow_id: held.slice(0, at), tag: held.slice(at + 1) };
}

/** Tasks of a paused workflow stay held: its resume leaves them to the next release. */
const RUNNING_WORKFLOW = "AND EXISTS (SELECT 1 FROM workflow w WHERE w.id = task.workflow_id AND w.state = 'RUNNING')";

const keyOf = (l: LimitScope) => `${l.namespace}\u0000${l.workflow_id}\u0000${l.tag}`;

function limitRow(r: Record<string, unknown>): LimitRow {
  return {
    namespace: r.namespace as string,
    workflow_id: r.workflow_id as string,
    tag: r.tag as string,
    max_running: Number(r.max_running),
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
  };
}

const ANY_LIMIT_READ_COLUMN = 'any_limit';
/** Whether any concurrency limit exists, as a transaction reads it when it opens (LimitRepository.opened). */
export const ANY_LIMIT_READ = `SELECT EXISTS (SELECT 1 FROM concurrency_limit) AS ${ANY_LIMIT_READ_COLUMN}`;

/**
 * Concurrency limits. The count of RUNNING tasks is never stored: it is read from the
 * task rows, under the limit rows' lock, in the transaction that leases (`admit`), so it
 * is exact across replicas and nothing has to give a slot back: a task leaving RUNNING
 * (report, expiry, cancel, hand-back) simply stops counting. A READY task that finds its
 * limit full is held (`held_limit`, its job dropped) and queued again by `release`.
 */
export class LimitRepository {
  /** Whether any limit exists, read once by this repository (one transaction's): see `anyLimit`. */
  private anyLimitRead: Promise<boolean> | null = null;

  constructor(private readonly em: EntityManager) {}

  /**
   * Whether any concurrency limit exists, read at most once a transaction (its lease gate
   * and its release of held tasks both ask). A limit set in it reads again; one removed in
   * it answers yes (the tasks held for it need the release). Without limits nothing is gated
   * and nothing held needs a release on the report path.
   */
  private anyLimit(): Promise<boolean> {
    this.anyLimitRead ??= sql(this.em, 'SELECT 1 AS x FROM concurrency_limit LIMIT 1').then((r) => r.rows.length > 0);
    return this.anyLimitRead;
  }

  /**
   * Takes: the row of ANY_LIMIT_READ, run as its transaction opened (PostgreSQL: in BEGIN's
   * message, Database.transaction; a promise, as the transaction goes on without waiting for
   * it). The lease gate then needs no statement of its own to learn that no limit exists. A
   * limit committed by another transaction after that read applies from this process's next
   * transaction on: one that opened before it (its lock waits included) leases as if it were
   * not there yet.
   */
  opened(row: Promise<Record<string, unknown>>): void {
    const read = row.then((r) => Boolean(r[ANY_LIMIT_READ_COLUMN]));
    // A failed opening fails the transaction (Database.transaction): not read here is not lost.
    read.catch(() => undefined);
    this.anyLimitRead = read;
  }

  /** Takes: a limit and a time. Sets it (created or changed). Returns: the row. */
  async put(l: LimitScope & { max_running: number }, now: number): Promise<LimitRow> {
    await sql(
      this.em,
      `INSERT INTO concurrency_limit (namespace, workflow_id, tag, max_running, created_at, updated_at) VALUES (:ns, :wf, :tag, :max, :now, :now)
       ON CONFLICT (namespace, workflow_id, tag) DO UPDATE SET max_running = :max, updated_at = :now`,
      { ns: l.namespace, wf: l.workflow_id, tag: l.tag, max: l.max_running, now },
    );
    this.anyLimitRead = null;
    return (await this.get(l))!;
  }

  /** Takes: a workflow (new), its namespace and its limits `{TAG: n}`. Writes one row each. */
  async putWorkflow(namespace: string, workflowId: string, limits: Record<string, number>, now: number): Promise<void> {
    for (const [tag, max] of Object.entries(limits))
      await this.put({ namespace, workflow_id: workflowId, tag, max_running: max }, now);
  }

  async get(l: LimitScope): Promise<LimitRow | null> {
    const { rows } = await sql(
      this.em,
      'SELECT * FROM concurrency_limit WHERE namespace = :ns AND workflow_id = :wf AND tag = :tag',
      { ns: l.namespace, wf: l.workflow_id, tag: l.tag },
    );
    return rows.length ? limitRow(rows[0]) : null;
  }

  /** Returns: a namespace's own limits (not its workflows'), by tag, after `after`, at most `limit`. */
  async list(namespace: string, after: string, limit: number): Promise<LimitRow[]> {
    const { rows } = await sql(
      this.em,
      `SELECT * FROM concurrency_limit WHERE namespace = :ns AND workflow_id = '' AND tag > :after ORDER BY tag LIMIT :lim`,
      { ns: namespace, after, lim: limit },
    );
    return rows.map(limitRow);
  }

  /** Returns: how many namespace-wide limits the namespace has. */
  async count(namespace: string): Promise<number> {
    const { rows } = await sql(
      this.em,
      `SELECT COUNT(*) AS n FROM concurrency_limit WHERE namespace = :ns AND workflow_id = ''`,
      { ns: namespace },
    );
    return Number(rows[0].n);
  }

  /** Returns: whether it existed. */
  async remove(l: LimitScope): Promise<boolean> {
    const { affected } = await sql(
      this.em,
      'DELETE FROM concurrency_limit WHERE namespace = :ns AND workflow_id = :wf AND tag = :tag',
      { ns: l.namespace, wf: l.workflow_id, tag: l.tag },
    );
    // Tasks held for it may now be held with no limit left: a release in this transaction must look.
    if (affected > 0) this.anyLimitRead = Promise.resolve(true);
    return affected > 0;
  }

  /**
   * Takes: limits. Returns: for each (by `keyOf`), the tasks in its scope carrying its tag
   * that are RUNNING, and those held for it.
   */
  async usage(limits: readonly LimitScope[]): Promise<Map<string, { running: number; held: number }>> {
    const out = new Map(limits.map((l) => [keyOf(l), { running: 0, held: 0 }]));
    for (const [k, n] of await this.running(limits)) out.get(k)!.running = n;
    if (limits.length === 0) return out;
    const { rows } = await sql(
      this.em,
      `SELECT namespace, held_limit, COUNT(*) AS n FROM task WHERE held_limit IN (:held) AND state = 'READY' GROUP BY namespace, held_limit`,
      { held: [...new Set(limits.map((l) => heldKey(l.workflow_id, l.tag)))] },
    );
    for (const r of rows) {
      const entry = out.get(keyOf(scopeOfHeld(r.namespace as string, r.held_limit as string)));
      if (entry) entry.held = Number(r.n);
    }
    return out;
  }

  /**
   * The gate of every lease. Takes: jobs about to be claimed, in the order they should be
   * served. For the READY tasks among them that carry a tag with a limit (their
   * namespace's, or their workflow's), locks those limits' rows (PostgreSQL; SQLite has one
   * writer), counts what is RUNNING under each, and admits a task only while every limit
   * on it has room. The others are held: `held_limit` names the first full limit.
   * Returns: the jobs to claim (in order).
   */
  async admit(jobs: readonly ClaimJob[]): Promise<ClaimJob[]> {
    if (jobs.length === 0) return [];
    if (!(await this.anyLimit())) return [...jobs];
    const { rows } = await sql(
      this.em,
      `SELECT t.id AS task_id, l.namespace, l.workflow_id, l.tag FROM task t
         JOIN task_tag tt ON tt.task_id = t.id
         JOIN concurrency_limit l ON l.namespace = t.namespace AND l.tag = tt.tag AND (l.workflow_id = '' OR l.workflow_id = t.workflow_id)
        WHERE t.id IN (:ids) AND t.state = 'READY'`,
      { ids: [...new Set(jobs.map((j) => j.taskId))] },
    );
    if (rows.length === 0) return [...jobs];
    const limitsOf = new Map<string, LimitScope[]>();
    for (const r of rows) {
      const l = { namespace: r.namespace as string, workflow_id: r.workflow_id as string, tag: r.tag as string };
      (limitsOf.get(r.task_id as string) ?? limitsOf.set(r.task_id as string, []).get(r.task_id as string)!).push(l);
    }
    const locked = await this.lock([...new Map([...limitsOf.values()].flat().map((l) => [keyOf(l), l])).values()]);
    const used = await this.running([...locked.values()]);
    const admitted: ClaimJob[] = [];
    const held = new Map<string, string[]>();
    for (const job of jobs) {
      // The rows just read name the limits; one removed meanwhile (absent once locked) no longer counts.
      const limits = (limitsOf.get(job.taskId) ?? []).filter((l) => locked.has(keyOf(l)));
      const full = limits.find((l) => (used.get(keyOf(l)) ?? 0) >= locked.get(keyOf(l))!.max_running);
      if (full) {
        const key = heldKey(full.workflow_id, full.tag);
        (held.get(key) ?? held.set(key, []).get(key)!).push(job.taskId);
        continue;
      }
      for (const l of limits) used.set(keyOf(l), (used.get(keyOf(l)) ?? 0) + 1);
      admitted.push(job);
    }
    for (const [key, ids] of held)
      await sql(this.em, 'UPDATE task SET held_limit = :key WHERE id IN (:ids) AND state = :in', {
        key,
        ids,
        in: TASK_MARKS.held_limit,
      });
    return admitted;
  }

  /**
   * Takes: namespaces (all when absent). For each limit with tasks held for it, locks the
   * limit and queues again (clears `held_limit` of) as many of them as it has room for,
   * highest priority first, then longest ready; all of them when the limit is gone. Only
   * tasks of RUNNING workflows. For given namespaces (a report's), nothing is read while no
   * limit exists at all: a task is held only under a limit, and the tasks held for one
   * removed are released by its removal (past the first thousand, or those of a workflow
   * paused then, by the reconciler and by the workflow's resume, which ask with no
   * namespaces and always look).
   * Returns: the tasks released (the caller queues them).
   */
  async release(namespaces?: readonly string[]): Promise<TaskEntity[]> {
    if (namespaces && (namespaces.length === 0 || !(await this.anyLimit()))) return [];
    // By the partial index alone (a few rows, none at all without limits): with the state in the
    // condition, PostgreSQL walked every READY task instead, on each report.
    const { rows } = await sql(this.em, 'SELECT DISTINCT namespace, held_limit FROM task WHERE held_limit IS NOT NULL');
    if (rows.length === 0) return [];
    const wanted = namespaces ? new Set(namespaces) : null;
    const scopes = rows
      .filter((r) => !wanted || wanted.has(r.namespace as string))
      .map((r) => scopeOfHeld(r.namespace as string, r.held_limit as string));
    if (scopes.length === 0) return [];
    // A limit another transaction holds (a claim) is left alone: waiting for it here, with this
    // transaction's own task rows locked, could close a circle with that claim. What is left
    // goes at the next release or the reconciler's next tick.
    const locked = await this.lock(scopes, true);
    const existing = await this.lock(
      scopes.filter((s) => !locked.has(keyOf(s))),
      false,
      false,
    );
    const used = await this.running([...locked.values()]);
    const out: TaskEntity[] = [];
    for (const s of scopes) {
      if (existing.has(keyOf(s))) continue; // exists, held by another transaction
      const limit = locked.get(keyOf(s));
      const room = limit ? limit.max_running - (used.get(keyOf(s)) ?? 0) : 100_000;
      if (room <= 0) continue;
      const { rows: tasks } = await sql(
        this.em,
        `SELECT * FROM task WHERE held_limit = :key AND namespace = :ns AND state = 'READY' ${RUNNING_WORKFLOW} ORDER BY priority DESC, ready_at, id LIMIT :room`,
        { key: heldKey(s.workflow_id, s.tag), ns: s.namespace, room: Math.min(room, 1000) },
      );
      if (tasks.length === 0) continue;
      const released = tasks.map((r) => hydrate(this.em, TaskEntity, r));
      await sql(this.em, 'UPDATE task SET held_limit = NULL WHERE id IN (:ids)', { ids: released.map((t) => t.id) });
      for (const t of released) t.held_limit = null;
      out.push(...released);
    }
    return out;
  }

  /**
   * Locks limit rows (in one order, so two claims never wait on each other in a circle).
   * `skipLocked`: rows another transaction holds are left out instead of waited for
   * (PostgreSQL). `forUpdate` false: only reads them. Returns: those that exist (and were locked).
   */
  private async lock(
    limits: readonly LimitScope[],
    skipLocked = false,
    lockRows = true,
  ): Promise<Map<string, LimitRow>> {
    const out = new Map<string, LimitRow>();
    if (limits.length === 0) return out;
    const sorted = [...limits].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
    const pg = kindOf(this.em) === 'postgres';
    const lock = !lockRows ? '' : `${forUpdate(kindOf(this.em))}${skipLocked && pg ? ' SKIP LOCKED' : ''}`;
    // One statement per namespace and scope: few limits are involved in one lease batch.
    const groups = new Map<string, LimitScope[]>();
    for (const l of sorted) {
      const g = `${l.namespace}\u0000${l.workflow_id}`;
      (groups.get(g) ?? groups.set(g, []).get(g)!).push(l);
    }
    for (const g of groups.values()) {
      const { rows } = await sql(
        this.em,
        `SELECT * FROM concurrency_limit WHERE namespace = :ns AND workflow_id = :wf AND tag IN (:tags) ORDER BY tag${lock}`,
        { ns: g[0].namespace, wf: g[0].workflow_id, tags: g.map((l) => l.tag) },
      );
      for (const r of rows) out.set(keyOf(limitRow(r)), limitRow(r));
    }
    return out;
  }

  /** The RUNNING tasks carrying each limit's tag in its scope (read from the task rows: nothing to drift). */
  private async running(limits: readonly LimitScope[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const wide = limits.filter((l) => l.workflow_id === '');
    const own = limits.filter((l) => l.workflow_id !== '');
    for (const ns of new Set(wide.map((l) => l.namespace))) {
      const tags = wide.filter((l) => l.namespace === ns).map((l) => l.tag);
      const { rows } = await sql(
        this.em,
        `SELECT tt.tag, COUNT(*) AS n FROM task t JOIN task_tag tt ON tt.task_id = t.id
          WHERE t.state = 'RUNNING' AND t.namespace = :ns AND tt.tag IN (:tags) GROUP BY tt.tag`,
        { ns, tags },
      );
      for (const r of rows) out.set(keyOf({ namespace: ns, workflow_id: '', tag: r.tag as string }), Number(r.n));
    }
    if (own.length > 0) {
      const { rows } = await sql(
        this.em,
        `SELECT t.namespace, t.workflow_id, tt.tag, COUNT(*) AS n FROM task t JOIN task_tag tt ON tt.task_id = t.id
          WHERE t.state = 'RUNNING' AND t.workflow_id IN (:wfs) AND tt.tag IN (:tags) GROUP BY t.namespace, t.workflow_id, tt.tag`,
        { wfs: [...new Set(own.map((l) => l.workflow_id))], tags: [...new Set(own.map((l) => l.tag))] },
      );
      for (const r of rows)
        out.set(
          keyOf({ namespace: r.namespace as string, workflow_id: r.workflow_id as string, tag: r.tag as string }),
          Number(r.n),
        );
    }
    return out;
  }
}

export { keyOf as limitKeyOf };
