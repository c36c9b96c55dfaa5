import type { TaskState } from './states.js';

/** What a dependent needs to know about a task it waits for. */
export interface DependencyView {
  id: string;
  name: string;
  state: TaskState;
  /** ERROR whose on_error handlers succeeded: counts as done for dependents. */
  handled: boolean;
  /** ERROR whose on_error handlers are still running: dependents keep waiting. */
  handling: boolean;
  /** For SKIPPED tasks, why (so a skip caused by a failure is told apart from a cancel). */
  errorCode: string | null;
}

export type DependencyStatus = 'satisfied' | 'pending' | 'dead';

export function dependencyStatus(dep: DependencyView): DependencyStatus {
  switch (dep.state) {
    case 'SUCCESS':
      return 'satisfied';
    case 'ERROR':
      if (dep.handled) return 'satisfied';
      return dep.handling ? 'pending' : 'dead';
    case 'SKIPPED':
    case 'CANCELLED':
      return 'dead';
    case 'WAITING':
    case 'READY':
    case 'RUNNING':
      return 'pending';
  }
}

/** A task that can never succeed: what waits for it is skipped (its state alone tells). */
export function isDeadDependency(dep: Pick<DependencyView, 'state' | 'handled' | 'handling'>): boolean {
  return dependencyStatus({ ...dep, id: '', name: '', errorCode: null }) === 'dead';
}

/**
 * Whether a finished task makes its workflow end ERROR: a failure no handler took care of,
 * or a skip caused by one (a skip caused by a cancel does not).
 */
export function failsWorkflow(t: { state: TaskState; handled: boolean; errorCode: string | null }): boolean {
  if (t.state === 'ERROR') return !t.handled;
  return (
    t.state === 'SKIPPED' && (t.errorCode === SKIP_CODES.dependencyFailed || t.errorCode === SKIP_CODES.workflowFailed)
  );
}

/** The error of a WAITING task failed because its dependencies can never be met. */
export const DEADLOCK_CODE = 'DEADLOCK';

/** Codes given to a task that is skipped because a dependency can never succeed. */
export const SKIP_CODES = {
  dependencyFailed: 'DEPENDENCY_FAILED',
  dependencyCancelled: 'DEPENDENCY_CANCELLED',
  workflowFailed: 'WORKFLOW_FAILED',
  workflowCancelled: 'WORKFLOW_CANCELLED',
} as const;

/** Why a dead dependency kills its dependent: a failure upstream, or a cancel upstream. */
export function skipCodeFor(dep: DependencyView): string {
  if (dep.state === 'ERROR') return SKIP_CODES.dependencyFailed;
  if (dep.state === 'CANCELLED') return SKIP_CODES.dependencyCancelled;
  if (dep.errorCode === SKIP_CODES.dependencyCancelled || dep.errorCode === SKIP_CODES.workflowCancelled) {
    return SKIP_CODES.dependencyCancelled;
  }
  return SKIP_CODES.dependencyFailed;
}

/**
 * The members of a set of tags, summarized once for every task that selects them (a
 * group of a thousand tasks selecting a tag of a thousand members costs two thousand
 * steps, not a million): their ids, the first that can never succeed, and which are pending.
 */
export class TagSelection {
  readonly size: number;
  readonly dead: DependencyView | null;
  readonly pending: number;
  private readonly ids: ReadonlySet<string>;
  private readonly pendingIds: ReadonlySet<string>;

  private constructor(members: readonly DependencyView[]) {
    const ids = new Set<string>();
    const pendingIds = new Set<string>();
    let dead: DependencyView | null = null;
    for (const m of members) {
      if (ids.has(m.id)) continue;
      ids.add(m.id);
      const status = dependencyStatus(m);
      if (status === 'dead') dead ??= m;
      else if (status === 'pending') pendingIds.add(m.id);
    }
    this.ids = ids;
    this.pendingIds = pendingIds;
    this.size = ids.size;
    this.dead = dead;
    this.pending = pendingIds.size;
  }

  /** Members may repeat (a task carrying two selected tags): each counts once. */
  static of(members: readonly DependencyView[]): TagSelection {
    return new TagSelection(members);
  }

  static readonly none = new TagSelection([]);

  has(id: string): boolean {
    return this.ids.has(id);
  }

  isPending(id: string): boolean {
    return this.pendingIds.has(id);
  }
}

export interface ReadinessInput {
  task: { id: string; requires: readonly string[]; requires_tags: readonly string[] };
  /** The tasks named in `requires`, by name (missing names count as pending). */
  byName: ReadonlyMap<string, DependencyView>;
  /** The tasks of the workflow carrying any of `requires_tags` (the task itself may be among them). */
  tags: TagSelection;
  sealed: boolean;
  /** Data keys the task reads that are not written yet, and those of them no unfinished task declares in `produces`. */
  data?: { missing: readonly string[]; unproducible: readonly string[] };
}

export type Readiness =
  | { kind: 'ready' }
  | { kind: 'waiting' }
  | { kind: 'dead'; cause: DependencyView; code: string; message: string }
  /** Can never become ready: the workflow is sealed and a data key it reads has no producer left. */
  | { kind: 'deadlock'; code: typeof DEADLOCK_CODE; message: string };

/**
 * Whether a WAITING task may run. A task waits for every task named in `requires` and
 * for every other task carrying one of `requires_tags`; a tag selector that matches no
 * task is satisfied only once the workflow is sealed (until then, members may still come).
 */
export function evaluateReadiness(input: ReadinessInput): Readiness {
  const { task } = input;
  let pending = false;
  const dead = (dep: DependencyView, how: string): Readiness => ({
    kind: 'dead',
    cause: dep,
    code: skipCodeFor(dep),
    message: `dependency ${dep.name} ${how} (${dep.state}${dep.errorCode ? ` ${dep.errorCode}` : ''})`,
  });

  for (const name of task.requires) {
    const dep = input.byName.get(name);
    if (!dep) {
      pending = true;
      continue;
    }
    const status = dependencyStatus(dep);
    if (status === 'dead') return dead(dep, 'can never succeed');
    if (status === 'pending') pending = true;
  }

  if (task.requires_tags.length > 0) {
    const { tags } = input;
    const self = tags.has(task.id) ? 1 : 0;
    if (tags.size - self === 0 && !input.sealed) pending = true;
    // The task being evaluated is WAITING, so it is never the dead member.
    if (tags.dead) return dead(tags.dead, 'selected by tag can never succeed');
    if (tags.pending - (tags.isPending(task.id) ? 1 : 0) > 0) pending = true;
  }

  if (input.data && input.data.missing.length > 0) {
    if (input.sealed && input.data.unproducible.length > 0) {
      const keys = input.data.unproducible;
      return {
        kind: 'deadlock',
        code: DEADLOCK_CODE,
        message: `waits for data ${keys.length === 1 ? 'key' : 'keys'} ${keys.join(', ')} that no unfinished task of the sealed workflow produces`,
      };
    }
    pending = true;
  }

  return pending ? { kind: 'waiting' } : { kind: 'ready' };
}

export interface GraphTask {
  name: string;
  tags: readonly string[];
  requires: readonly string[];
  requires_tags: readonly string[];
  /** Data keys the task reads ({{ data.KEY }}) and writes (produces). */
  data_requires?: readonly string[];
  produces?: readonly string[];
  /**
   * Only tasks that wait, or may wait again (mayWaitAgain), have outgoing edges: the others
   * are past their dependencies.
   */
  waiting: boolean;
}

/**
 * Whether a task waits for its dependencies now or may again: WAITING; SKIPPED because a
 * dependency failed (a rerun of that task brings it back); ERROR with DEADLOCK (a rerun
 * makes it wait again). A cycle through such a task would close on that rerun.
 */
export function mayWaitAgain(state: TaskState, errorCode: string | null | undefined): boolean {
  return (
    state === 'WAITING' ||
    (state === 'SKIPPED' && errorCode === SKIP_CODES.dependencyFailed) ||
    (state === 'ERROR' && errorCode === DEADLOCK_CODE)
  );
}

/**
 * Finds a dependency cycle among the tasks, or returns null. The result is the path
 * that closes on itself, e.g. ["a", "b", "a"], where each step reads "waits for";
 * a step through a tag selector shows as "tag:NAME", through a data key as "data:KEY".
 *
 * A tag selector becomes one virtual node with an edge to each member, so a selector
 * shared by many tasks costs one edge per member, not one per pair. A task that carries
 * the tag it selects would reach itself through that node although it never waits on
 * itself; for those, the selector is expanded to direct edges that leave the task out.
 */
export function findCycle(tasks: readonly GraphTask[]): string[] | null {
  const members = new Map<string, string[]>();
  for (const t of tasks) {
    for (const tag of new Set(t.tags)) {
      let list = members.get(tag);
      if (!list) members.set(tag, (list = []));
      list.push(t.name);
    }
  }
  // A reader of a data key waits for every task that declares it produces the key.
  const producers = new Map<string, string[]>();
  for (const t of tasks) {
    for (const key of new Set(t.produces ?? [])) (producers.get(key) ?? producers.set(key, []).get(key)!).push(t.name);
  }
  const names = new Set(tasks.map((t) => t.name));
  const edges = new Map<string, string[]>();
  const usedTagNodes = new Set<string>();
  const usedDataNodes = new Set<string>();
  for (const t of tasks) {
    if (!t.waiting) continue;
    const out: string[] = [];
    for (const r of t.requires) if (names.has(r)) out.push(r);
    const own = new Set(t.tags);
    for (const tag of new Set(t.requires_tags)) {
      const list = members.get(tag) ?? [];
      if (own.has(tag)) {
        for (const m of list) if (m !== t.name) out.push(m);
      } else if (list.length > 0) {
        out.push(`tag:${tag}`);
        usedTagNodes.add(tag);
      }
    }
    for (const key of new Set(t.data_requires ?? [])) {
      if ((producers.get(key) ?? []).length > 0) {
        out.push(`data:${key}`);
        usedDataNodes.add(key);
      }
    }
    edges.set(t.name, out);
  }
  for (const tag of usedTagNodes) edges.set(`tag:${tag}`, members.get(tag) ?? []);
  for (const key of usedDataNodes) edges.set(`data:${key}`, producers.get(key) ?? []);

  // Iterative DFS with three colours; the stack holds the current path.
  const colour = new Map<string, 1 | 2>(); // 1 = on the path, 2 = done
  for (const start of edges.keys()) {
    if (colour.has(start)) continue;
    const path: string[] = [start];
    const cursor: number[] = [0];
    colour.set(start, 1);
    while (path.length > 0) {
      const node = path[path.length - 1];
      const out = edges.get(node) ?? [];
      const i = cursor[cursor.length - 1];
      if (i >= out.length) {
        colour.set(node, 2);
        path.pop();
        cursor.pop();
        continue;
      }
      cursor[cursor.length - 1] = i + 1;
      const next = out[i];
      const c = colour.get(next);
      if (c === 1) return [...path.slice(path.indexOf(next)), next];
      if (c === undefined) {
        colour.set(next, 1);
        path.push(next);
        cursor.push(0);
      }
    }
  }
  return null;
}

export function describeCycle(path: readonly string[]): string {
  return `dependency cycle: ${path.join(' -> ')}`;
}

export interface RevertCandidate {
  name: string;
  tags: readonly string[];
  requires: readonly string[];
  requires_tags: readonly string[];
}

/**
 * For a rollback: which reverts each revert must wait for. If B depended on A (directly
 * or through other tasks), A's revert runs after B's. Returns, for each of `revertible`,
 * the names among `revertible` whose reverts must finish first.
 */
export function reverseDependencyOrder(
  all: readonly RevertCandidate[],
  revertible: ReadonlySet<string>,
): Map<string, string[]> {
  // dependents[x] = tasks that waited for x.
  const dependents = new Map<string, Set<string>>();
  const byTag = new Map<string, string[]>();
  for (const t of all) for (const tag of t.tags) (byTag.get(tag) ?? byTag.set(tag, []).get(tag)!).push(t.name);
  const add = (dep: string, on: string) => {
    if (dep === on) return;
    (dependents.get(on) ?? dependents.set(on, new Set()).get(on)!).add(dep);
  };
  for (const t of all) {
    for (const r of t.requires) add(t.name, r);
    for (const tag of t.requires_tags) for (const m of byTag.get(tag) ?? []) add(t.name, m);
  }
  const result = new Map<string, string[]>();
  for (const name of revertible) {
    // Nearest revertible tasks downstream; through non-revertible ones transitively.
    const found = new Set<string>();
    const seen = new Set<string>([name]);
    const stack = [...(dependents.get(name) ?? [])];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      if (revertible.has(n)) {
        found.add(n);
        continue;
      }
      stack.push(...(dependents.get(n) ?? []));
    }
    result.set(name, [...found].sort());
  }
  return result;
}
