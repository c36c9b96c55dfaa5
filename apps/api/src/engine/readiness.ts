import { DEADLOCK_CODE, evaluateReadiness, isDeadDependency, TagSelection, type DependencyView } from '@tagflow/domain';
import { dependencyView, type TaskEntity, type WorkflowEntity } from '@tagflow/persistence';
import type { UnitOfWork } from './unit-of-work.js';

/** Dependents read with their rows at once (see release); more are counted first. */
const FEW_DEPENDENTS = 100;

/**
 * When a WAITING task may run. Each verdict is the domain's (`evaluateReadiness`); this
 * file gathers what it needs in a few queries per batch and applies the outcome:
 * READY (queued if the workflow runs; a task whose `not_before` is still ahead is marked
 * to be woken then instead), SKIPPED (a dependency can never succeed) or
 * ERROR DEADLOCK (a data key it reads can no longer come). Ended tasks become facts for
 * the settle loop; nothing here asks whether the workflow is done. `released`: tasks this
 * operation has just settled, whose objects stand for their rows (see viewsByName).
 */
export async function evaluate(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  waiting: readonly TaskEntity[],
  released: readonly TaskEntity[] = [],
): Promise<void> {
  const tasks = waiting.filter((t) => t.state === 'WAITING');
  if (tasks.length === 0) return;
  const { repos } = uow;
  const byName = await viewsByName(uow, wf, unique(tasks.flatMap((t) => t.requires)), released);
  const byTag = await repos.tasks.viewsByTag(wf.id, unique(tasks.flatMap((t) => t.requires_tags)));
  const data = await dataState(uow, wf, unique(tasks.flatMap((t) => t.data_requires)));
  const selection = selections(byTag);
  const ready: TaskEntity[] = [];
  // Dead tasks by verdict: one guarded UPDATE per verdict (500 rows a statement), not one per
  // task: a root failing under 100,000 dependents skips them in a few hundred statements.
  const dead = new Map<string, { code: string; message: string; tasks: TaskEntity[] }>();
  const stuck = new Map<string, TaskEntity[]>();
  // Ready but for their not_before: they wait for that time (the reconciler wakes them).
  const early: TaskEntity[] = [];
  for (const task of tasks) {
    const missing = task.data_requires.filter((k) => !data.written.has(k));
    const verdict = evaluateReadiness({
      task,
      byName,
      tags: selection(task.requires_tags),
      sealed: wf.sealed,
      data: { missing, unproducible: missing.filter((k) => !data.producible.has(k)) },
    });
    switch (verdict.kind) {
      case 'ready':
        if (task.not_before !== null && task.not_before > uow.now) early.push(task);
        else ready.push(task);
        break;
      case 'deadlock':
        (stuck.get(verdict.message) ?? stuck.set(verdict.message, []).get(verdict.message)!).push(task);
        break;
      case 'dead': {
        const key = `${verdict.code}\n${verdict.message}`;
        const group =
          dead.get(key) ?? dead.set(key, { code: verdict.code, message: verdict.message, tasks: [] }).get(key)!;
        group.tasks.push(task);
        break;
      }
      case 'waiting':
        break;
    }
  }
  if (early.length > 0) await repos.tasks.holdUntilNotBefore(early.map((t) => t.id));
  if (ready.length > 0) {
    const moved = new Set(
      await repos.transitions.tasks({
        ids: ready.map((t) => t.id),
        from: ['WAITING'],
        to: 'READY',
        set: { ready_at: uow.now },
        reason: 'dependencies met',
      }),
    );
    for (const t of ready) {
      if (!moved.has(t.id)) continue;
      Object.assign(t, { state: 'READY', ready_at: uow.now, updated_at: uow.now });
      if (wf.state === 'RUNNING') uow.taskReady(t);
    }
  }
  await deadlock(uow, wf, stuck);
  const skipped: TaskEntity[] = [];
  for (const { code, message, tasks: group } of dead.values()) {
    const error = { code, message };
    const moved = new Set(
      await repos.transitions.tasks({
        ids: group.map((t) => t.id),
        from: ['WAITING'],
        to: 'SKIPPED',
        set: { error },
        reason: message,
      }),
    );
    for (const t of group) {
      if (!moved.has(t.id)) continue;
      Object.assign(t, { state: 'SKIPPED', error, finished_at: uow.now, updated_at: uow.now });
      skipped.push(t);
    }
  }
  if (skipped.length > 0) uow.record({ kind: 'settled', wf, tasks: skipped });
}

/**
 * How many of `wanted` evaluations the operation's budget allows now (0 once the workflow has
 * ended: ERROR or CANCELLED stops its open tasks, completion.ts stopTasks, so none will run);
 * the workflow is marked to settle the rest later (the continuation: settle_pending, its
 * WAITING tasks evaluated again in later transactions).
 */
function budgeted(uow: UnitOfWork, wf: WorkflowEntity, wanted: number): number {
  if (wanted === 0 || hasEnded(wf)) return 0;
  const now = uow.takeBudget(wanted);
  if (now < wanted) uow.defer(wf);
  return now;
}

/** `evaluate` for WAITING tasks already read, as many as the budget allows (`released`: see evaluate). */
async function evaluateTasks(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  waiting: readonly TaskEntity[],
  released: readonly TaskEntity[],
): Promise<void> {
  const now = budgeted(uow, wf, waiting.length);
  if (now > 0) await evaluate(uow, wf, waiting.slice(0, now), released);
}

/** `evaluate` for tasks known by id: as many as the budget allows are read and evaluated. */
export async function evaluateIds(uow: UnitOfWork, wf: WorkflowEntity, ids: readonly string[]): Promise<void> {
  const all = unique(ids);
  const now = budgeted(uow, wf, all.length);
  if (now > 0) await evaluate(uow, wf, await uow.repos.tasks.load(all.slice(0, now)));
}

/**
 * One step of a settle left for later: evaluates the next WAITING tasks of the workflow,
 * a budget's worth in id order, after where its walk stands (`settle_after`, in its row).
 * A walk that finds none left ends the continuation: the mark goes and the workflow-wide
 * questions apply again. Any operation that leaves evaluations for later sets the walk
 * back to the start (settle.ts), so a walk reaches the end only after it has been through
 * every task that was waiting since the last such operation. Returns: whether more steps
 * are needed.
 */
export async function continueSettling(uow: UnitOfWork, wf: WorkflowEntity): Promise<boolean> {
  const ids = await uow.repos.tasks.waitingAfter(wf.id, wf.settle_after, uow.evaluationBudget);
  if (ids.length === 0) {
    await settled(uow, wf);
    return false;
  }
  await uow.repos.workflows.setSettle(wf, true, ids[ids.length - 1]);
  uow.record({ kind: 'evaluate-ids', wf, ids });
  return true;
}

/** Nothing is left for later: the workflow-wide questions apply again. */
export async function settled(uow: UnitOfWork, wf: WorkflowEntity): Promise<void> {
  await uow.repos.workflows.setSettle(wf, false, '');
  uow.touch(wf);
}

/**
 * Tasks reached a terminal state (or were handled): their waiters are woken after commit
 * and the tasks that wait for them are evaluated. A tag selector is met only when every
 * member is done: while another member of a tag is still open, its selectors need no
 * evaluation (that would cost the group's size per member, the square of it in all). A
 * dead member kills its selectors at once.
 */
export async function release(uow: UnitOfWork, wf: WorkflowEntity, tasks: readonly TaskEntity[]): Promise<void> {
  uow.tasksFinished(
    tasks.map((t) => t.id),
    tasks,
  );
  if (hasEnded(wf)) return;
  // No task of the workflow selected a tag as its lock was read: no tag needs a look. (One
  // added since, by this operation or by the transaction that held the lock before, is found
  // among the waiting tasks below and evaluated, which is always right: a look would only
  // have spared that evaluation while another member of its tag is open.)
  const open =
    wf.selects_tags === false
      ? new Set<string>()
      : await uow.repos.deps.tagsWithOpenMembers(
          wf.id,
          unique(tasks.filter((t) => !isDeadDependency(t)).flatMap((t) => t.tags)),
        );
  const releasing = tasks.map((t) => ({
    name: t.name,
    produces: t.produces,
    tags: isDeadDependency(t) ? t.tags : t.tags.filter((tag) => !open.has(tag)),
  }));
  // A few (a chain's next task): found with their rows in one statement, as many as the budget
  // allows evaluated. Many: the WAITING ones found first, then only a budget's worth read.
  const few = await uow.repos.deps.fewWaiting(wf.id, releasing, FEW_DEPENDENTS);
  if (few) await evaluateTasks(uow, wf, few, tasks);
  else await evaluateIds(uow, wf, await uow.repos.deps.dependentsOf(wf.id, releasing));
}

/** A data key was written: the tasks that read it are evaluated. */
export async function dataWritten(uow: UnitOfWork, wf: WorkflowEntity, key: string): Promise<void> {
  await evaluateIds(uow, wf, await uow.repos.deps.dependentsOf(wf.id, [{ tags: [], produces: [key] }]));
}

/**
 * WAITING tasks that can never run fail with DEADLOCK (one guarded UPDATE per reason, 500
 * rows a statement); each one's on_error and the workflow's on_failure then apply.
 */
export async function deadlock(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  byReason: ReadonlyMap<string, readonly TaskEntity[]>,
): Promise<void> {
  for (const [message, tasks] of byReason) {
    const error = { code: DEADLOCK_CODE, message };
    const moved = new Set(
      await uow.repos.transitions.tasks({
        ids: tasks.map((t) => t.id),
        from: ['WAITING'],
        to: 'ERROR',
        set: { error },
        reason: `deadlock: ${message}`,
      }),
    );
    if (moved.size === 0) continue;
    const ids = tasks.filter((t) => moved.has(t.id)).map((t) => t.id);
    uow.logger.event('warn', 'engine', 'tasks can never run', {
      workflow_id: wf.id,
      count: ids.length,
      task_ids: ids.slice(0, 20),
      reason: message,
    });
    uow.endedAny = true;
    for (const task of tasks) {
      if (!moved.has(task.id)) continue;
      Object.assign(task, { state: 'ERROR', error, finished_at: uow.now, updated_at: uow.now });
      uow.record({ kind: 'failed-for-good', wf, task });
    }
  }
}

/**
 * The tasks named, as a dependency sees them, by name. Those in `released` (this operation has
 * just settled them, and keeps their objects in step with their rows) are not read again: a
 * chain's next task needs no statement to learn that the task before it is done.
 */
async function viewsByName(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  names: readonly string[],
  released: readonly TaskEntity[],
): Promise<Map<string, DependencyView>> {
  const known = new Map(released.filter((t) => t.workflow_id === wf.id).map((t) => [t.name, t]));
  const byName = await uow.repos.tasks.viewsByName(
    wf.id,
    names.filter((n) => !known.has(n)),
  );
  for (const name of names) {
    const t = known.get(name);
    if (t) byName.set(name, dependencyView(t));
  }
  return byName;
}

/** Which of `keys` are written, and which missing ones an unfinished task still declares it produces. */
async function dataState(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  keys: string[],
): Promise<{ written: Set<string>; producible: Set<string> }> {
  const written = await uow.repos.data.written(wf.id, keys);
  const missing = keys.filter((k) => !written.has(k));
  // Only a sealed workflow can know that no task will ever produce a key.
  const producible =
    missing.length > 0 && wf.sealed ? await uow.repos.deps.producible(wf.id, missing) : new Set<string>();
  return { written, producible };
}

/** Tasks selecting the same tags share one summary of the members. */
function selections(byTag: Map<string, DependencyView[]>): (tags: readonly string[]) => TagSelection {
  const cache = new Map<string, TagSelection>();
  return (tags) => {
    if (tags.length === 0) return TagSelection.none;
    const key = tags.join('\n');
    let sel = cache.get(key);
    if (!sel) cache.set(key, (sel = TagSelection.of(tags.flatMap((tag) => byTag.get(tag) ?? []))));
    return sel;
  };
}

/** The workflow ended ERROR or CANCELLED: its open tasks are being stopped, none will run. */
function hasEnded(wf: WorkflowEntity): boolean {
  return wf.state === 'ERROR' || wf.state === 'CANCELLED';
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}
