import type { EntityManager } from 'typeorm';
import { mayWaitAgain } from '@tagflow/domain';
import { ReservedNameEntity, TaskDepEntity, TaskEntity, TaskTagEntity } from '../entities/task.entity.js';
import { IN_CHUNK, inChunks, insertRows, sql } from '../dialect.js';
import { hydrate } from '../rows.js';

/** What a finished task can release: its name, its tags, and the data keys it produces. */
export interface Releasing {
  name?: string;
  tags: readonly string[];
  produces?: readonly string[];
}

export type DepKind = TaskDepEntity['kind'];

/**
 * The edges of a workflow's graph: task_tag (a task's tags, for tag selectors),
 * task_dep (what each task waits for, by kind: `name`, `tag`, `data`, and the `produces`
 * keys it writes) and reserved_name (names on_error handlers will take). A new kind of
 * dependency is a new `kind` here, one probe in `dependentsOf`, and one rule in
 * libs/domain `evaluateReadiness`.
 */
export class DependencyRepository {
  constructor(private readonly em: EntityManager) {}

  /** Takes: new tasks and the handler names each reserves. Writes their tag, dependency and reserved-name rows. */
  async insertFor(tasks: readonly TaskEntity[], reserved: readonly (readonly string[])[]): Promise<void> {
    await insertRows(
      this.em,
      TaskTagEntity,
      tasks.flatMap((t) => t.tags.map((tag) => ({ task_id: t.id, tag, workflow_id: t.workflow_id }))),
    );
    await insertRows(this.em, TaskDepEntity, tasks.flatMap(depRows));
    await insertRows(
      this.em,
      ReservedNameEntity,
      tasks.flatMap((t, i) =>
        (reserved[i] ?? []).map((name) => ({ workflow_id: t.workflow_id, name, owner_task_id: t.id })),
      ),
    );
  }

  /** Takes: a task as it is now and the handler names it reserves. Replaces its rows (a PATCH). */
  async replaceFor(task: TaskEntity, reserved: readonly string[]): Promise<void> {
    await this.deleteFor(task.id);
    await this.insertFor([task], [reserved]);
  }

  /** Takes: a task id. Deletes its tag, dependency and reserved-name rows. */
  async deleteFor(taskId: string): Promise<void> {
    await sql(this.em, 'DELETE FROM task_tag WHERE task_id = :id', { id: taskId });
    await sql(this.em, 'DELETE FROM task_dep WHERE task_id = :id', { id: taskId });
    await sql(this.em, 'DELETE FROM reserved_name WHERE owner_task_id = :id', { id: taskId });
  }

  /** Takes: a workflow id and names. Returns: those reserved for handlers, with the task that reserves each. */
  async reserved(workflowId: string, names: readonly string[]): Promise<{ name: string; owner_task_id: string }[]> {
    const rows = await inChunks(
      names,
      async (slice) =>
        (
          await sql(
            this.em,
            'SELECT name, owner_task_id FROM reserved_name WHERE workflow_id = :wf AND name IN (:names)',
            { wf: workflowId, names: slice },
          )
        ).rows,
    );
    return rows.map((r) => ({ name: r.name as string, owner_task_id: r.owner_task_id as string }));
  }

  /** Takes: a workflow id and a task name. Returns: the ids of the tasks that require it by name. */
  async requiringName(workflowId: string, name: string): Promise<string[]> {
    const { rows } = await sql(
      this.em,
      `SELECT task_id FROM task_dep WHERE workflow_id = :wf AND kind = 'name' AND dep_key = :name`,
      { wf: workflowId, name },
    );
    return rows.map((r) => r.task_id as string);
  }

  /**
   * Takes: a workflow id and what some tasks release (names, tags, produced keys).
   * Returns: the WAITING tasks that require one of the names, select one of the tags or
   * read one of the keys.
   */
  async dependentsOf(
    workflowId: string,
    releasing: readonly Releasing[],
    states: readonly string[] = ['WAITING'],
  ): Promise<string[]> {
    return this.inStates(await this.dependentIds(workflowId, releasing), states);
  }

  /** Takes: task ids and states. Returns: the ids of those tasks in one of the states. */
  private async inStates(ids: readonly string[], states: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await inChunks(
      ids,
      async (slice) =>
        (await sql(this.em, 'SELECT id FROM task WHERE id IN (:ids) AND state IN (:states)', { ids: slice, states }))
          .rows,
    );
    return rows.map((r) => r.id as string);
  }

  /** As dependentsOf, in any state: the ids of the tasks that depend on what `releasing` releases. */
  private async dependentIds(workflowId: string, releasing: readonly Releasing[]): Promise<string[]> {
    // Two reads, no join: the dependencies by their index, then those tasks by primary key. A
    // join let PostgreSQL, with statistics from before the workflow grew, drive it from
    // `task` by state and probe the dependency index once per task (20,000 x 20,000 rows).
    const ids = new Set<string>();
    for (const lists of slicesOf(keysOf(releasing))) {
      const { rows } = await sql(this.em, probes(lists)!, { wf: workflowId, ...lists });
      for (const r of rows) ids.add(r.task_id as string);
    }
    return [...ids];
  }

  /**
   * As dependentsOf, with their rows, in one statement while they are few (a chain's next
   * task): the dependencies gathered first, then at most `few` + 1 WAITING tasks among them
   * by primary key (`union`'s statement, limited).
   * Returns: their rows in id order; null when there are more than `few` of them, or more
   * keys than one statement takes (the caller reads them as ids: dependentsOf).
   */
  async fewWaiting(workflowId: string, releasing: readonly Releasing[], few: number): Promise<TaskEntity[] | null> {
    const lists = [...slicesOf(keysOf(releasing))];
    if (lists.length === 0) return [];
    if (lists.length > 1) return null;
    const { rows } = await sql(this.em, `${union(lists[0], 't.*')!} LIMIT :lim`, {
      wf: workflowId,
      ...lists[0],
      states: ['WAITING'],
      lim: few + 1,
    });
    if (rows.length > few) return null;
    return rows.map((r) => hydrate(this.em, TaskEntity, r)).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** Takes: a workflow id and dependency kinds. Returns: the WAITING tasks with a dependency of those kinds. */
  async waitingOn(workflowId: string, kinds: readonly DepKind[]): Promise<string[]> {
    const { rows } = await sql(
      this.em,
      `SELECT DISTINCT d.task_id FROM task_dep d JOIN task t ON t.id = d.task_id AND t.state = 'WAITING'
        WHERE d.workflow_id = :wf AND d.kind IN (:kinds)`,
      { wf: workflowId, kinds },
    );
    return rows.map((r) => r.task_id as string);
  }

  /** Takes: a workflow id and data keys. Returns: those an unfinished task still declares it produces. */
  async producible(workflowId: string, keys: readonly string[]): Promise<Set<string>> {
    const rows = await inChunks(
      keys,
      async (slice) =>
        (
          await sql(
            this.em,
            `SELECT DISTINCT d.dep_key FROM task_dep d JOIN task t ON t.id = d.task_id AND t.state IN ('WAITING', 'READY', 'RUNNING')
        WHERE d.workflow_id = :wf AND d.kind = 'produces' AND d.dep_key IN (:keys)`,
            { wf: workflowId, keys: slice },
          )
        ).rows,
    );
    return new Set(rows.map((r) => r.dep_key as string));
  }

  /**
   * Takes: a workflow id, tags and data keys, and whether tasks that may wait again count.
   * Returns: whether a task that waits (WAITING), or with `orAgain` may wait again after a
   * rerun (mayWaitAgain), selects one of the tags or reads one of the keys.
   */
  async anyWaitingFor(
    workflowId: string,
    tags: readonly string[],
    keys: readonly string[],
    orAgain: boolean,
  ): Promise<boolean> {
    for (const lists of slicesOf({ tag: tags, data: keys })) {
      const params = { wf: workflowId, ...lists };
      if (!orAgain) {
        const { rows } = await sql(this.em, `${union(lists)!} LIMIT 1`, { ...params, states: ['WAITING'] });
        if (rows.length > 0) return true;
        continue;
      }
      // WAITING, or ended and brought back by a rerun (mayWaitAgain); MAY_WAIT_READ rows
      // are taken as one that is.
      const { rows } = await sql(this.em, `${union(lists, 't.state, t.error')!} LIMIT ${MAY_WAIT_READ}`, {
        ...params,
        states: ['WAITING', 'SKIPPED', 'ERROR'],
      });
      if (rows.length === MAY_WAIT_READ) return true;
      if (rows.map((r) => hydrate(this.em, TaskEntity, r)).some((t) => mayWaitAgain(t.state, t.error?.code)))
        return true;
    }
    return false;
  }

  /**
   * Takes: a workflow id and tags. Returns: those that some task selects and some
   * unfinished task still carries (a WAITING member that selects the tag itself does not
   * count: it waits for the others). Per tag, one probe for a selector, then one for an
   * open member, newest first (ids are time-ordered and tasks finish roughly oldest first,
   * so an open member is near the top; the walk follows ix_task_tag_members).
   */
  async tagsWithOpenMembers(workflowId: string, tags: readonly string[]): Promise<Set<string>> {
    const open = new Set<string>();
    for (const tag of tags) {
      const selected = await sql(
        this.em,
        `SELECT 1 AS one FROM task_dep WHERE workflow_id = :wf AND kind = 'tag' AND dep_key = :tag LIMIT 1`,
        { wf: workflowId, tag },
      );
      if (selected.rows.length === 0) continue;
      const member = await sql(
        this.em,
        `SELECT tt.task_id FROM task_tag tt JOIN task t ON t.id = tt.task_id
          WHERE tt.workflow_id = :wf AND tt.tag = :tag
            AND (t.state IN ('WAITING', 'READY', 'RUNNING') OR t.handling = :yes)
            AND NOT (t.state = 'WAITING' AND EXISTS (SELECT 1 FROM task_dep sd WHERE sd.task_id = t.id AND sd.kind = 'tag' AND sd.dep_key = :tag))
          ORDER BY tt.task_id DESC
          LIMIT 1`,
        { wf: workflowId, tag, yes: true },
      );
      if (member.rows.length > 0) open.add(tag);
    }
    return open;
  }
}

/**
 * Tasks (in `:states`) with a dependency of each kind on one of its keys (`:name`,
 * `:tag`, `:data` lists): one probe of the index (workflow_id, kind, dep_key) per kind
 * with keys, joined by UNION (ORed kinds in one WHERE made SQLite use only the index's
 * workflow_id and read every dependency of the workflow), then their tasks' states by
 * primary key. The dependencies are gathered first (MATERIALIZED): with statistics taken
 * before a workflow grew (20,000 WAITING tasks added in seconds), PostgreSQL planned the
 * join from `task` by state and probed the dependency index once per task, 20,000 × 20,000
 * rows, past the 30 s statement timeout. CROSS JOIN keeps SQLite's join in that order too
 * (an inner JOIN let it walk every WAITING task of the database by the state index and look
 * each up in `d`); PostgreSQL plans it as the inner join it is. Null when no kind has keys.
 */
function union(keys: Partial<Record<DepKind, readonly string[]>>, columns = 'd.task_id'): string | null {
  const deps = probes(keys);
  return deps
    ? `WITH d AS MATERIALIZED (${deps}) SELECT ${columns} FROM d CROSS JOIN task t WHERE t.id = d.task_id AND t.state IN (:states)`
    : null;
}

/** Tasks anyWaitingFor reads at most to find one that waits or a rerun would bring back; that many count as one. */
const MAY_WAIT_READ = 100;

/** The dependencies (their tasks' ids) of each kind on one of its keys: one index probe per kind, by UNION. */
function probes(keys: Partial<Record<DepKind, readonly string[]>>): string | null {
  const parts = (Object.entries(keys) as [DepKind, readonly string[]][])
    .filter(([, list]) => list.length > 0)
    .map(
      ([kind]) => `SELECT task_id FROM task_dep WHERE workflow_id = :wf AND kind = '${kind}' AND dep_key IN (:${kind})`,
    );
  return parts.length ? parts.join(' UNION ') : null;
}

/** What tasks release, by dependency kind: their names, tags and produced keys, each once. */
function keysOf(releasing: readonly Releasing[]): Partial<Record<DepKind, readonly string[]>> {
  return {
    name: [...new Set(releasing.flatMap((t) => (t.name ? [t.name] : [])))],
    tag: [...new Set(releasing.flatMap((t) => t.tags))],
    data: [...new Set(releasing.flatMap((t) => t.produces ?? []))],
  };
}

/**
 * The key lists of a UNION probe as statements can take them: all in one while they hold
 * at most IN_CHUNK keys together (the usual case), else each kind's list in slices.
 */
function* slicesOf(
  keys: Partial<Record<DepKind, readonly string[]>>,
): Generator<Partial<Record<DepKind, readonly string[]>>> {
  const kinds = (Object.entries(keys) as [DepKind, readonly string[]][]).filter(([, list]) => list.length > 0);
  if (kinds.length === 0) return;
  if (kinds.reduce((n, [, list]) => n + list.length, 0) <= IN_CHUNK) {
    yield Object.fromEntries(kinds);
    return;
  }
  for (const [kind, list] of kinds)
    for (let i = 0; i < list.length; i += IN_CHUNK) yield { [kind]: list.slice(i, i + IN_CHUNK) };
}

/** The task_dep rows of a task: one per name it requires, tag it selects, key it reads, key it produces. */
function depRows(t: TaskEntity): TaskDepEntity[] {
  const row = (kind: DepKind) => (dep_key: string) => ({ task_id: t.id, kind, dep_key, workflow_id: t.workflow_id });
  return [
    ...t.requires.map(row('name')),
    ...t.requires_tags.map(row('tag')),
    ...t.data_requires.map(row('data')),
    ...t.produces.map(row('produces')),
  ];
}
