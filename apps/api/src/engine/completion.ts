import { isTerminalWorkflow, reverseDependencyOrder, SKIP_CODES } from '@tagflow/domain';
import type { TaskEntity, WorkflowEntity } from '@tagflow/persistence';
import { deadlock } from './readiness.js';
import { addTasks } from './submission.js';
import type { TaskSpecLike } from './task-spec.js';
import type { UnitOfWork } from './unit-of-work.js';

/**
 * The workflow-wide questions, asked by the settle loop once nothing else is pending:
 * is it done (sealed and every task terminal), must it roll back, and, in a sealed
 * running workflow where nothing can move any more, which waiting tasks never will.
 */
export async function checkWorkflow(uow: UnitOfWork, wf: WorkflowEntity): Promise<void> {
  if (isTerminalWorkflow(wf.state)) return;
  const { tasks } = uow.repos;
  // Indexed probes that stop at the first row: this runs after every report. A task this
  // operation made READY or leased (a chain's next one) answers the first without a read.
  if (uow.repos.events.leftOpen(wf.id) || (await tasks.anyIn(wf.id, ['READY', 'RUNNING']))) return;
  if (await tasks.anyHandling(wf.id)) return;
  // A task waiting only for its not_before moves by itself when the time comes: not stuck.
  if (await tasks.anyHeldForTime(wf.id)) return;
  if (await tasks.anyIn(wf.id, ['WAITING'])) {
    // Never hang silently: with every fact settled and nothing ready, running or being
    // handled, the tasks still waiting in a sealed, running workflow never will run.
    if (wf.sealed && wf.state === 'RUNNING') {
      const stuck = await tasks.load(await tasks.idsIn(wf.id, ['WAITING']));
      uow.logger.event('warn', 'engine', 'sealed workflow cannot make progress; failing its waiting tasks', {
        workflow_id: wf.id,
        tasks: stuck.length,
      });
      const byReason = new Map<string, TaskEntity[]>();
      for (const t of stuck) {
        const reason = `nothing left can satisfy what it waits for (${describeWaits(t)})`;
        (byReason.get(reason) ?? byReason.set(reason, []).get(reason)!).push(t);
      }
      await deadlock(uow, wf, byReason);
    }
    return;
  }
  const failed = await tasks.anyUnhandledFailure(wf.id);
  if (failed && wf.on_failure === 'rollback') {
    if (!wf.rollback_started && (await startRollback(uow, wf)) > 0) return;
    await finish(uow, wf, 'ERROR', 'rolled back after a failure');
    return;
  }
  if (wf.sealed) await finish(uow, wf, failed ? 'ERROR' : 'SUCCESS', failed ? 'a task failed' : 'every task finished');
}

/**
 * Ends the workflow now: waiting work is skipped or cancelled (STOP_BATCH tasks in this
 * transaction, the rest in later ones: see continueStopping), running work asked to cancel.
 */
export async function stopWorkflow(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  to: 'ERROR' | 'CANCELLED',
  message: string,
): Promise<void> {
  // Ended already: its stop goes on in steps as it began (continueStopping), with its own code.
  if (isTerminalWorkflow(wf.state)) return;
  const code = to === 'ERROR' ? SKIP_CODES.workflowFailed : SKIP_CODES.workflowCancelled;
  await stopTasks(uow, wf, to === 'ERROR' ? 'SKIPPED' : 'CANCELLED', code, message, true);
  if (await uow.repos.transitions.workflow(wf, { from: ['RUNNING', 'PAUSED'], to, reason: message }))
    uow.workflowFinished(wf);
}

/** WAITING and READY tasks a stop moves in one transaction at most, when it may leave the rest for later. */
export const STOP_BATCH = 5000;

/**
 * WAITING and READY tasks end as `to`; RUNNING ones are asked to cancel (told at their
 * next heartbeat). With `inSteps` (the workflow ends with this stop), STOP_BATCH of them
 * now and the workflow is marked for the reconciler to go on (continueStopping).
 */
export async function stopTasks(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  to: 'SKIPPED' | 'CANCELLED',
  code: string,
  message: string,
  inSteps = false,
): Promise<void> {
  const { repos } = uow;
  const open = await repos.tasks.idsIn(wf.id, ['WAITING', 'READY'], inSteps ? STOP_BATCH + 1 : undefined);
  if (open.length > STOP_BATCH && inSteps) {
    open.length = STOP_BATCH;
    uow.defer(wf);
    uow.touch(wf);
  }
  const moved = await repos.transitions.tasks({
    ids: open,
    from: ['WAITING', 'READY'],
    to,
    set: { error: { code, message } },
    reason: message,
  });
  uow.tasksFinished(moved);
  const running = await repos.tasks.idsIn(wf.id, ['RUNNING']);
  await repos.transitions.tasks({
    ids: running,
    from: ['RUNNING'],
    flags: { cancel_requested: true },
    reason: `cancel requested: ${message}`,
  });
}

/**
 * One step of a stop left for later (a workflow that ended with more than STOP_BATCH
 * tasks open): the next of them end as the first did. Returns: whether none is left.
 */
export async function continueStopping(uow: UnitOfWork, wf: WorkflowEntity): Promise<boolean> {
  const cancelled = wf.state === 'CANCELLED';
  const message = `the workflow ended ${wf.state}: stopped with the rest of its open tasks`;
  await stopTasks(
    uow,
    wf,
    cancelled ? 'CANCELLED' : 'SKIPPED',
    cancelled ? SKIP_CODES.workflowCancelled : SKIP_CODES.workflowFailed,
    message,
    true,
  );
  return !uow.isDeferred(wf.id);
}

async function finish(uow: UnitOfWork, wf: WorkflowEntity, to: 'SUCCESS' | 'ERROR', reason: string): Promise<void> {
  if (await uow.repos.transitions.workflow(wf, { from: ['RUNNING', 'PAUSED'], to, reason })) {
    uow.workflowFinished(wf);
    uow.logger.event('info', 'engine', 'workflow finished', { workflow_id: wf.id, state: to });
  }
}

/** Adds the revert of every task that succeeded, in reverse dependency order, on the same tags. Returns how many. */
async function startRollback(uow: UnitOfWork, wf: WorkflowEntity): Promise<number> {
  await uow.repos.transitions.workflow(wf, {
    from: ['RUNNING', 'PAUSED'],
    flags: { rollback_started: true },
    reason: 'rollback started',
  });
  const all = await uow.repos.tasks.allOf(wf.id);
  const revertible = all.filter((t) => t.state === 'SUCCESS' && t.revert && t.kind !== 'revert');
  if (revertible.length === 0) return 0;
  const order = reverseDependencyOrder(all, new Set(revertible.map((t) => t.name)));
  const taken = new Set(all.map((t) => t.name));
  const revertName = new Map<string, string>();
  for (const t of revertible) {
    let name = `${t.name}.revert`.slice(0, 128);
    for (let i = 2; taken.has(name); i++) name = `${t.name}.revert.${i}`.slice(0, 128);
    taken.add(name);
    revertName.set(t.name, name);
  }
  const specs: TaskSpecLike[] = revertible.map((t) => ({
    name: revertName.get(t.name),
    tags: t.tags,
    action: t.revert!,
    input: { task: t.name, input: t.input, output: t.output },
    requires: (order.get(t.name) ?? []).map((n) => revertName.get(n)!),
    lease_s: t.lease_s,
    ...(t.timeout_s ? { timeout_s: t.timeout_s } : {}),
  }));
  await addTasks(uow, wf, specs, { kind: 'revert', engineAdded: true, createdBy: wf.created_by });
  uow.logger.event('info', 'engine', 'rollback started', { workflow_id: wf.id, reverts: specs.length });
  return specs.length;
}

function describeWaits(t: Pick<TaskEntity, 'requires' | 'requires_tags' | 'data_requires'>): string {
  const parts = [
    t.requires.length ? `tasks ${t.requires.join(', ')}` : '',
    t.requires_tags.length ? `tags ${t.requires_tags.join(', ')}` : '',
    t.data_requires.length ? `data ${t.data_requires.join(', ')}` : '',
  ].filter(Boolean);
  return parts.join('; ') || 'nothing';
}
