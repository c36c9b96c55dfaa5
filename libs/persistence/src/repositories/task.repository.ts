import type { EntityManager } from 'typeorm';
import {
  failsWorkflow,
  mayWaitAgain,
  TASK_MARKS,
  type DependencyView,
  type GraphTask,
  type TaskState,
} from '@tagflow/domain';
import { TaskEntity } from '../entities/task.entity.js';
import { inChunks, insertRows, sql } from '../dialect.js';
import { hydrate, persisted } from '../rows.js';
import { rowById } from './pages.js';

export interface TaskPageQuery {
  state?: TaskState;
  tag?: string;
  after?: { created_at: number; id: string } | null;
  limit: number;
}

/**
 * The task table. Every statement names what it takes and returns; rows come back as
 * entities (JSON, booleans and times as the entity declares them). State and flag
 * changes are not here: they go through TransitionRepository; nor are the leases of
 * RUNNING tasks: LeaseRepository.
 */
export class TaskRepository {
  constructor(private readonly em: EntityManager) {}

  /** Takes: new task rows. Writes them as they are (their tags and dependencies: DependencyRepository). */
  async insert(rows: readonly TaskEntity[]): Promise<void> {
    await insertRows(this.em, TaskEntity, rows);
  }

  /** Takes: task ids (and states). Returns: the tasks that exist (in one of the states), in the order of `ids`. */
  async load(ids: readonly string[], states?: readonly TaskState[]): Promise<TaskEntity[]> {
    const where = states ? 'id IN (:ids) AND state IN (:states)' : 'id IN (:ids)';
    const out = await inChunks(ids, async (slice) =>
      (await sql(this.em, `SELECT * FROM task WHERE ${where}`, { ids: slice, states })).rows.map((r) =>
        hydrate(this.em, TaskEntity, r),
      ),
    );
    const order = new Map(ids.map((id, i) => [id, i]));
    return out.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  }

  /** Takes: a workflow id, an id to start after and a bound. Returns: ids of its WAITING tasks after it, in id order. */
  async waitingAfter(workflowId: string, after: string, limit: number): Promise<string[]> {
    const { rows } = await sql(
      this.em,
      `SELECT id FROM task WHERE workflow_id = :wf AND state = 'WAITING' AND id > :after ORDER BY id LIMIT :lim`,
      { wf: workflowId, after, lim: limit },
    );
    return rows.map((r) => r.id as string);
  }

  /** Takes: task ids. Returns: those of them that have a callback, whole. */
  async withCallbacks(ids: readonly string[]): Promise<TaskEntity[]> {
    return inChunks(ids, async (slice) =>
      (await sql(this.em, 'SELECT * FROM task WHERE id IN (:ids) AND callback IS NOT NULL', { ids: slice })).rows.map(
        (r) => hydrate(this.em, TaskEntity, r),
      ),
    );
  }

  /** Returns: the tag sets that have a READY or RUNNING task (their queues are in use). */
  async busyTagsets(): Promise<Set<string>> {
    const { rows } = await sql(this.em, `SELECT DISTINCT tagset_id FROM task WHERE state IN ('READY', 'RUNNING')`);
    return new Set(rows.map((r) => r.tagset_id as string));
  }

  /** Takes: a task id and, for a request, its namespace. Returns: the task (if it lives there), or null. */
  async get(id: string, namespace?: string): Promise<TaskEntity | null> {
    if (namespace === undefined) return (await this.load([id]))[0] ?? null;
    return rowById(this.em, TaskEntity, 'task', id, namespace);
  }

  /** Takes: a workflow id and a task id or name. Returns: that task of the workflow, or null. */
  async getInWorkflow(workflowId: string, idOrName: string, byId: boolean): Promise<TaskEntity | null> {
    const { rows } = await sql(
      this.em,
      byId
        ? 'SELECT * FROM task WHERE workflow_id = :wf AND (id = :key OR name = :key) ORDER BY (id = :key) DESC LIMIT 1'
        : 'SELECT * FROM task WHERE workflow_id = :wf AND name = :key',
      { wf: workflowId, key: idOrName },
    );
    return rows[0] ? hydrate(this.em, TaskEntity, rows[0]) : null;
  }

  /** Takes: a workflow id. Returns: its oldest task (the single-task shortcut's only one), or null. */
  async firstOf(workflowId: string): Promise<TaskEntity | null> {
    const { rows } = await sql(this.em, 'SELECT * FROM task WHERE workflow_id = :wf ORDER BY created_at, id LIMIT 1', {
      wf: workflowId,
    });
    return rows[0] ? hydrate(this.em, TaskEntity, rows[0]) : null;
  }

  /** Takes: a workflow id, filters and a cursor. Returns: up to limit + 1 tasks, oldest first. */
  async page(workflowId: string, q: TaskPageQuery): Promise<TaskEntity[]> {
    const where = ['t.workflow_id = :wf'];
    if (q.state) where.push('t.state = :state');
    if (q.tag) where.push('EXISTS (SELECT 1 FROM task_tag tt WHERE tt.task_id = t.id AND tt.tag = :tag)');
    if (q.after) where.push('(t.created_at > :c OR (t.created_at = :c AND t.id > :i))');
    const { rows } = await sql(
      this.em,
      `SELECT t.* FROM task t WHERE ${where.join(' AND ')} ORDER BY t.created_at, t.id LIMIT :lim`,
      {
        wf: workflowId,
        state: q.state,
        tag: q.tag,
        c: q.after?.created_at,
        i: q.after?.id,
        lim: q.limit + 1,
      },
    );
    return rows.map((r) => hydrate(this.em, TaskEntity, r));
  }

  /** Takes: a workflow id and task names. Returns: those that name a task of the workflow. */
  async existingNames(workflowId: string, names: readonly string[]): Promise<Set<string>> {
    const rows = await inChunks(
      names,
      async (slice) =>
        (
          await sql(this.em, 'SELECT name FROM task WHERE workflow_id = :wf AND name IN (:names)', {
            wf: workflowId,
            names: slice,
          })
        ).rows,
    );
    return new Set(rows.map((r) => r.name as string));
  }

  /** Takes: a workflow id and task names. Returns: each named task as a dependency sees it, by name. */
  async viewsByName(workflowId: string, names: readonly string[]): Promise<Map<string, DependencyView>> {
    const rows = await inChunks(
      names,
      async (slice) =>
        (
          await sql(
            this.em,
            'SELECT id, name, state, handled, handling, error FROM task WHERE workflow_id = :wf AND name IN (:names)',
            { wf: workflowId, names: slice },
          )
        ).rows,
    );
    return new Map(rows.map((r) => [r.name as string, this.view(r)]));
  }

  /** Takes: a workflow id and tags. Returns: per tag, every task of the workflow carrying it, as a dependency sees it. */
  async viewsByTag(workflowId: string, tags: readonly string[]): Promise<Map<string, DependencyView[]>> {
    const map = new Map<string, DependencyView[]>();
    if (tags.length === 0) return map;
    const rows = await inChunks(
      tags,
      async (slice) =>
        (
          await sql(
            this.em,
            `SELECT tt.tag AS tag, t.id, t.name, t.state, t.handled, t.handling, t.error
         FROM task_tag tt JOIN task t ON t.id = tt.task_id
        WHERE tt.workflow_id = :wf AND tt.tag IN (:tags)`,
            { wf: workflowId, tags: slice },
          )
        ).rows,
    );
    for (const r of rows) {
      const tag = r.tag as string;
      (map.get(tag) ?? map.set(tag, []).get(tag)!).push(this.view(r));
    }
    return map;
  }

  /**
   * Takes: a workflow id, and whether tasks that may wait again count. Returns: the dependency
   * graph of its tasks; only those that wait (WAITING; with `orAgain`, mayWaitAgain) have edges
   * that matter.
   */
  async graph(workflowId: string, orAgain: boolean): Promise<GraphTask[]> {
    const { rows } = await sql(
      this.em,
      'SELECT name, tags, requires, requires_tags, produces, data_requires, state, error FROM task WHERE workflow_id = :wf',
      { wf: workflowId },
    );
    return rows.map((r) => {
      const t = hydrate(this.em, TaskEntity, r);
      return {
        name: t.name,
        tags: t.tags,
        requires: t.requires,
        requires_tags: t.requires_tags,
        produces: t.produces,
        data_requires: t.data_requires,
        waiting: orAgain ? mayWaitAgain(t.state, t.error?.code) : t.state === 'WAITING',
      };
    });
  }

  /** Takes: a workflow id. Returns: every task of it (a rollback reads them all once). */
  async allOf(workflowId: string): Promise<TaskEntity[]> {
    const { rows } = await sql(this.em, 'SELECT * FROM task WHERE workflow_id = :wf ORDER BY created_at, id', {
      wf: workflowId,
    });
    return rows.map((r) => hydrate(this.em, TaskEntity, r));
  }

  /** Takes: a workflow id and states. Returns: the ids of its tasks in those states. */
  async idsIn(workflowId: string, states: readonly TaskState[], limit?: number): Promise<string[]> {
    const { rows } = await sql(
      this.em,
      `SELECT id FROM task WHERE workflow_id = :wf AND state IN (:states) ORDER BY id${limit === undefined ? '' : ' LIMIT :limit'}`,
      { wf: workflowId, states, ...(limit === undefined ? {} : { limit }) },
    );
    return rows.map((r) => r.id as string);
  }

  /** Takes: a workflow id and states. Returns: whether one of its tasks is in them (an indexed probe that stops at the first row). */
  async anyIn(workflowId: string, states: readonly TaskState[]): Promise<boolean> {
    const { rows } = await sql(this.em, 'SELECT id FROM task WHERE workflow_id = :wf AND state IN (:states) LIMIT 1', {
      wf: workflowId,
      states,
    });
    return rows.length > 0;
  }

  /** Takes: a workflow id. Returns: whether a task of it waits for its `not_before` alone (it will move by itself then). */
  async anyHeldForTime(workflowId: string): Promise<boolean> {
    const { rows } = await sql(
      this.em,
      `SELECT id FROM task WHERE workflow_id = :wf AND state = 'WAITING' AND wake_at IS NOT NULL LIMIT 1`,
      { wf: workflowId },
    );
    return rows.length > 0;
  }

  /** Takes: a workflow id. Returns: whether a failed task of it has handlers running. */
  async anyHandling(workflowId: string): Promise<boolean> {
    const { rows } = await sql(
      this.em,
      `SELECT id FROM task WHERE workflow_id = :wf AND state = 'ERROR' AND handling = :yes LIMIT 1`,
      { wf: workflowId, yes: true },
    );
    return rows.length > 0;
  }

  /**
   * Takes: a workflow id. Returns: whether a task of it makes it end ERROR (the domain's
   * failsWorkflow): an unhandled ERROR, found by an indexed probe; else a skip caused by one.
   */
  async anyUnhandledFailure(workflowId: string): Promise<boolean> {
    const { rows: failed } = await sql(
      this.em,
      `SELECT id FROM task WHERE workflow_id = :wf AND state = 'ERROR' AND handled = :no LIMIT 1`,
      { wf: workflowId, no: false },
    );
    if (failed.length > 0) return true;
    const { rows } = await sql(
      this.em,
      `SELECT state, handled, error FROM task WHERE workflow_id = :wf AND state = 'SKIPPED'`,
      {
        wf: workflowId,
      },
    );
    return rows.some((r) => {
      const t = hydrate(this.em, TaskEntity, r);
      return failsWorkflow({ state: t.state, handled: t.handled, errorCode: t.error?.code ?? null });
    });
  }

  /** Takes: a failed task's id and when it failed. Returns: the handlers it started for that failure. */
  async handlersOf(parentId: string, since: number): Promise<TaskEntity[]> {
    const { rows } = await sql(
      this.em,
      `SELECT * FROM task WHERE parent_task_id = :p AND kind = 'handler' AND created_at >= :since`,
      { p: parentId, since },
    );
    return rows.map((r) => hydrate(this.em, TaskEntity, r));
  }

  /** Takes: a workflow id and task names. Returns: name, state and output of each (input references read them). */
  async outputs(
    workflowId: string,
    names: readonly string[],
  ): Promise<Pick<TaskEntity, 'id' | 'name' | 'state' | 'output' | 'finished_at'>[]> {
    if (names.length === 0) return [];
    const rows = await inChunks(
      names,
      async (slice) =>
        (
          await sql(
            this.em,
            'SELECT id, name, state, output, finished_at FROM task WHERE workflow_id = :wf AND name IN (:names)',
            { wf: workflowId, names: slice },
          )
        ).rows,
    );
    return rows.map((r) => hydrate(this.em, TaskEntity, r));
  }

  /** Takes: a workflow id. Returns: id, name and finish time of its SUCCESS tasks, by name (their outputs are data keys). */
  async succeeded(workflowId: string): Promise<Pick<TaskEntity, 'id' | 'name' | 'finished_at'>[]> {
    const { rows } = await sql(
      this.em,
      `SELECT id, name, finished_at FROM task WHERE workflow_id = :wf AND state = 'SUCCESS' ORDER BY name`,
      { wf: workflowId },
    );
    return rows.map((r) => hydrate(this.em, TaskEntity, r));
  }

  /** Takes: a task id, the changed spec columns and the clock. Writes them (a PATCH before the task runs). */
  async updateSpec(id: string, fields: Partial<TaskEntity>, now: number): Promise<void> {
    const assign = { ...fields, updated_at: now };
    const sets = Object.keys(assign).map((p) => `${p} = :s_${p}`);
    const params = Object.fromEntries(
      Object.entries(assign).map(([p, v]) => [`s_${p}`, persisted(this.em, TaskEntity, p, v)]),
    );
    await sql(this.em, `UPDATE task SET ${sets.join(', ')} WHERE id = :id`, { ...params, id });
  }

  /** Takes: a task id. Deletes the task row (its events, tags and dependencies: their repositories). */
  async delete(id: string): Promise<void> {
    await sql(this.em, 'DELETE FROM task WHERE id = :id', { id });
  }

  /** Takes: waiting tasks that their `not_before` alone holds. Marks each to be evaluated again at that time. */
  async holdUntilNotBefore(ids: readonly string[]): Promise<void> {
    await inChunks(ids, async (slice) => {
      await sql(this.em, 'UPDATE task SET wake_at = not_before WHERE id IN (:ids) AND state = :in', {
        ids: slice,
        in: TASK_MARKS.wake_at,
      });
      return [];
    });
  }

  /** Returns: up to `limit` tasks whose `not_before` has come (wake_at <= now), soonest first. */
  async due(now: number, limit: number): Promise<Pick<TaskEntity, 'id' | 'workflow_id'>[]> {
    const { rows } = await sql(
      this.em,
      'SELECT id, workflow_id FROM task WHERE wake_at IS NOT NULL AND wake_at <= :now ORDER BY wake_at LIMIT :lim',
      { now, lim: limit },
    );
    return rows.map((r) => ({ id: r.id as string, workflow_id: r.workflow_id as string }));
  }

  /** Takes: tasks found `due`. Clears their mark (they are being evaluated now). */
  async woken(ids: readonly string[]): Promise<void> {
    if (ids.length > 0) await sql(this.em, 'UPDATE task SET wake_at = NULL WHERE id IN (:ids)', { ids: [...ids] });
  }

  /**
   * Takes: a keyset position, a bound, and optionally a time: only tasks READY since before it.
   * Returns: READY tasks of RUNNING workflows after that position, by ready_at then id (to
   * queue again); not those a concurrency limit holds (they have no job on purpose).
   */
  async readyPage(
    after: { ready_at: number; id: string },
    limit: number,
    readyBefore?: number,
  ): Promise<Pick<TaskEntity, 'id' | 'namespace' | 'attempt' | 'tagset_id' | 'tags' | 'ready_at' | 'priority'>[]> {
    const old = readyBefore === undefined ? '' : 'AND t.ready_at <= :old';
    const { rows } = await sql(
      this.em,
      `SELECT t.id, t.namespace, t.attempt, t.tagset_id, t.tags, t.ready_at, t.priority FROM task t
         JOIN workflow w ON w.id = t.workflow_id AND w.state = 'RUNNING'
        WHERE t.state = 'READY' AND t.held_limit IS NULL AND (t.ready_at > :ra OR (t.ready_at = :ra AND t.id > :id)) ${old}
        ORDER BY t.ready_at, t.id LIMIT :lim`,
      { ra: after.ready_at, id: after.id, old: readyBefore, lim: limit },
    );
    return rows.map((r) => hydrate(this.em, TaskEntity, r));
  }

  /** Takes: workflow ids. Returns: per workflow, how many of its tasks are in each state. */
  async countsByState(workflowIds: readonly string[]): Promise<Map<string, Partial<Record<TaskState, number>>>> {
    const map = new Map<string, Partial<Record<TaskState, number>>>();
    if (workflowIds.length === 0) return map;
    const { rows } = await sql(
      this.em,
      'SELECT workflow_id, state, COUNT(*) AS n FROM task WHERE workflow_id IN (:ids) GROUP BY workflow_id, state',
      { ids: workflowIds },
    );
    for (const r of rows) {
      const counts = map.get(r.workflow_id as string) ?? {};
      counts[r.state as TaskState] = Number(r.n);
      map.set(r.workflow_id as string, counts);
    }
    return map;
  }

  /** A row (id, name, state, handled, handling, error) as a dependency sees it. */
  private view(r: Record<string, unknown>): DependencyView {
    return dependencyView(hydrate(this.em, TaskEntity, r));
  }
}

/** A task as a task that depends on it sees it. */
export function dependencyView(
  t: Pick<TaskEntity, 'id' | 'name' | 'state' | 'handled' | 'handling' | 'error'>,
): DependencyView {
  return {
    id: t.id,
    name: t.name,
    state: t.state,
    handled: t.handled,
    handling: t.handling,
    errorCode: t.error?.code ?? null,
  };
}
