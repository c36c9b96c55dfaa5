import { DEADLOCK_CODE, isTerminalTask, isTerminalWorkflow, SKIP_CODES } from '@tagflow/domain';
import type { TaskEntity, WorkflowEntity } from '@tagflow/persistence';
import { conflict } from '../common/errors.js';
import { stopWorkflow } from './completion.js';
import { releaseHeld } from './limits.js';
import { addTasks } from './submission.js';
import type { TaskSpecLike } from './task-spec.js';
import type { UnitOfWork } from './unit-of-work.js';

/**
 * What people ask of a workflow or a task besides adding work: create, seal, pause,
 * resume and cancel a workflow; cancel, rerun and delete a task. Each checks the state
 * (409 naming it), changes it through the transitions and records what follows.
 */

/** Writes a new workflow and its inline tasks (the settle loop evaluates them, and finishes an empty sealed one). */
export async function createWorkflow(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  tasks: readonly TaskSpecLike[],
): Promise<void> {
  await uow.repos.workflows.insert(wf);
  await uow.repos.limits.putWorkflow(wf.namespace, wf.id, wf.limits, uow.now);
  if (tasks.length) await addTasks(uow, wf, tasks, { kind: 'task', creating: true, createdBy: wf.created_by });
  uow.touch(wf);
}

export async function seal(uow: UnitOfWork, wf: WorkflowEntity): Promise<void> {
  if (wf.sealed) return;
  if (isTerminalWorkflow(wf.state)) throw conflict(`workflow ${wf.id} is ${wf.state}`, { state: wf.state });
  await uow.repos.transitions.workflow(wf, { from: ['RUNNING', 'PAUSED'], flags: { sealed: true }, reason: 'sealed' });
  // Tag selectors that matched nothing were waiting for exactly this; data keys that no
  // task declares it produces can no longer come (a deadlock, reported now).
  uow.record({ kind: 'evaluate-ids', wf, ids: await uow.repos.deps.waitingOn(wf.id, ['tag', 'data']) });
}

export async function cancelWorkflow(uow: UnitOfWork, wf: WorkflowEntity): Promise<void> {
  if (wf.state === 'CANCELLED') return;
  if (isTerminalWorkflow(wf.state)) throw conflict(`workflow ${wf.id} is ${wf.state}`, { state: wf.state });
  await stopWorkflow(uow, wf, 'CANCELLED', 'workflow cancelled on request');
}

export async function pause(uow: UnitOfWork, wf: WorkflowEntity): Promise<void> {
  if (wf.state === 'PAUSED') return;
  if (wf.state !== 'RUNNING')
    throw conflict(`workflow ${wf.id} is ${wf.state}; only a RUNNING workflow can be paused`, { state: wf.state });
  await uow.repos.transitions.workflow(wf, { from: ['RUNNING'], to: 'PAUSED', reason: 'paused on request' });
}

export async function resume(uow: UnitOfWork, wf: WorkflowEntity): Promise<void> {
  if (wf.state === 'RUNNING') return;
  if (wf.state !== 'PAUSED')
    throw conflict(`workflow ${wf.id} is ${wf.state}; only a PAUSED workflow can be resumed`, { state: wf.state });
  await uow.repos.transitions.workflow(wf, { from: ['PAUSED'], to: 'RUNNING', reason: 'resumed on request' });
  // Jobs of READY tasks may have been dropped while paused: queue them all again (idempotent).
  // Those held by a concurrency limit go as far as their limits have room, now: a limit removed
  // while the workflow was paused left them held with no report of its namespace to look.
  const ready = await uow.repos.tasks.load(await uow.repos.tasks.idsIn(wf.id, ['READY']));
  for (const t of ready) if (t.held_limit === null) uow.taskReady(t, Math.max(0, (t.ready_at ?? 0) - uow.now));
  if (ready.some((t) => t.held_limit !== null)) await releaseHeld(uow);
  // The workflow-wide questions were not asked while it was paused (done? stuck?): now.
  uow.touch(wf);
}

/** Cancels a task: at once if it has not started, else through its worker's next heartbeat. */
export async function cancelTask(uow: UnitOfWork, wf: WorkflowEntity, t: TaskEntity): Promise<void> {
  if (isTerminalTask(t.state)) throw conflict(`task ${t.id} is ${t.state}`, { state: t.state });
  const { transitions } = uow.repos;
  if (t.state === 'RUNNING') {
    await transitions.tasks({
      ids: [t.id],
      from: ['RUNNING'],
      flags: { cancel_requested: true },
      reason: 'cancel requested',
    });
    return;
  }
  const set = { error: { code: 'CANCELLED', message: 'cancelled on request' } };
  const moved = await transitions.tasks({
    ids: [t.id],
    from: ['WAITING', 'READY'],
    to: 'CANCELLED',
    set,
    reason: 'cancelled on request',
  });
  if (moved.length)
    uow.record({ kind: 'settled', wf, tasks: [Object.assign(t, set, { state: 'CANCELLED' as const })] });
}

/**
 * Runs an ERROR task again as a new attempt, while its workflow is unfinished. The tasks
 * that were SKIPPED because it failed (and theirs, in turn) wait again: they may run
 * after all.
 */
export async function rerun(uow: UnitOfWork, wf: WorkflowEntity, t: TaskEntity): Promise<void> {
  if (t.state !== 'ERROR')
    throw conflict(`task ${t.id} is ${t.state}; only an ERROR task can be rerun`, { state: t.state });
  if (isTerminalWorkflow(wf.state))
    throw conflict(`workflow ${wf.id} is ${wf.state}; a finished workflow's tasks cannot be rerun`, {
      state: wf.state,
    });
  if (t.handling) throw conflict(`task ${t.id} has on_error handlers running`);
  const { repos } = uow;
  // A DEADLOCK task never ran: its dependencies could not be met. It waits again and is
  // evaluated, so it runs only once they are (a data key written since, say), or fails again.
  const waits = t.error?.code === DEADLOCK_CODE;
  const set = {
    attempt: t.attempt + 1,
    ready_at: waits ? null : uow.now,
    error: null,
    output: null,
    exit_code: null,
    worker_id: null,
    finished_at: null,
  };
  await repos.transitions.tasks({
    ids: [t.id],
    from: ['ERROR'],
    to: waits ? 'WAITING' : 'READY',
    // Only an attempt that ran can carry a cancel request.
    flags: waits ? { handled: false } : { handled: false, cancel_requested: false },
    set,
    reason: 'rerun on request',
  });
  if (waits) uow.record({ kind: 'evaluate', wf, tasks: [Object.assign(t, set, { state: 'WAITING' as const })] });
  else if (wf.state === 'RUNNING') uow.taskReady({ ...t, attempt: t.attempt + 1 });
  await reviveSkipped(uow, wf, t);
}

/** SKIPPED -> WAITING for every task skipped because `failed` failed, transitively; each is then evaluated. */
async function reviveSkipped(uow: UnitOfWork, wf: WorkflowEntity, failed: TaskEntity): Promise<void> {
  const { repos } = uow;
  const revived: string[] = [];
  let frontier: TaskEntity[] = [failed];
  while (frontier.length > 0) {
    const skipped = (await repos.tasks.load(await repos.deps.dependentsOf(wf.id, frontier, ['SKIPPED']))).filter(
      (s) => s.error?.code === SKIP_CODES.dependencyFailed,
    );
    const moved = new Set(
      await repos.transitions.tasks({
        ids: skipped.map((s) => s.id),
        from: ['SKIPPED'],
        to: 'WAITING',
        set: { error: null, finished_at: null },
        reason: `task ${failed.name} is rerun`,
      }),
    );
    frontier = skipped.filter((s) => moved.has(s.id));
    revived.push(...frontier.map((s) => s.id));
  }
  if (revived.length) uow.record({ kind: 'evaluate-ids', wf, ids: revived });
}

/** Deletes a task before it runs, unless another task requires it by name. */
export async function deleteTask(uow: UnitOfWork, wf: WorkflowEntity, t: TaskEntity): Promise<void> {
  if (t.state !== 'WAITING' && t.state !== 'READY')
    throw conflict(`task ${t.id} is ${t.state}; only a WAITING or READY task can be deleted`, { state: t.state });
  const { repos } = uow;
  const others = (await repos.deps.requiringName(wf.id, t.name)).filter((id) => id !== t.id);
  if (others.length > 0) {
    const names = (await repos.tasks.load(others)).map((n) => n.name);
    throw conflict(`task ${t.name} is required by ${names.join(', ')}`, { required_by: names });
  }
  await repos.events.deleteOfTask(t.id);
  await repos.deps.deleteFor(t.id);
  await repos.tasks.delete(t.id);
  // Tasks that selected it by tag no longer wait for it.
  uow.record({ kind: 'evaluate-ids', wf, ids: await repos.deps.dependentsOf(wf.id, [t]) });
}
