import { hasRetryLeft, isTerminalWorkflow, matchOnError, retryDelayMs, SKIP_CODES } from '@tagflow/domain';
import type { LeaseOutcome, TaskEntity, TaskErrorInfo, WorkflowEntity } from '@tagflow/persistence';
import { stopTasks, stopWorkflow } from './completion.js';
import { reportSet, type ReportFields } from './report-fields.js';
import { addTasks } from './submission.js';
import type { TaskSpecLike } from './task-spec.js';
import type { UnitOfWork } from './unit-of-work.js';

/** The error code of an attempt a worker gave back when it stopped (see the worker's graceful stop). */
export const INTERRUPTED_CODE = 'WORKER_SHUTDOWN';
/**
 * Hand-backs a task gets outside its retry budget. Beyond them a WORKER_SHUTDOWN is an
 * ordinary failed attempt: a task that stops every worker it lands on (`kill $PPID`)
 * cannot go round the fleet for ever, and a report claiming the code cannot buy more.
 */
export const FREE_HANDBACKS = 3;

/**
 * A failed attempt (reported, timed out, or lease expired): retried after its delay
 * while the policy allows, else the task fails for good. A task whose cancel was
 * requested ends CANCELLED instead.
 */
export async function failAttempt(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  task: TaskEntity,
  error: TaskErrorInfo,
  retryable: boolean,
  report: ReportFields,
  outcome: LeaseOutcome,
  handBack = false,
): Promise<void> {
  const { repos } = uow;
  uow.leaseEnded(task);
  if (task.cancel_requested) {
    const set = {
      error: { code: 'CANCELLED', message: `cancelled on request (${error.message})` },
      ...reportSet(report),
      lease_outcome: outcome,
    };
    const moved = await repos.transitions.tasks({
      ids: [task.id],
      from: ['RUNNING'],
      to: 'CANCELLED',
      set,
      reason: 'cancel requested',
      known: task,
    });
    if (moved.length)
      uow.record({
        kind: 'settled',
        wf,
        tasks: [Object.assign(task, set, { state: 'CANCELLED' as const, finished_at: uow.now })],
      });
    return;
  }
  // A worker that stopped mid-task hands it back: that attempt says nothing about the
  // task, so it runs again at once outside its retry budget (a few times; see FREE_HANDBACKS).
  // Only a registered worker may (the hand-back marks it stopping: LeaseService.fail), or
  // the API itself (`handBack`: a lease it could not deliver).
  const interrupted =
    (handBack || (error.code === INTERRUPTED_CODE && task.worker_id !== null)) && task.handbacks < FREE_HANDBACKS;
  const counted = task.attempt - task.handbacks; // attempts the retry policy counts
  if (retryable && (interrupted || hasRetryLeft(task.retry, counted)) && !isTerminalWorkflow(wf.state)) {
    const delayMs = interrupted ? 0 : retryDelayMs(task.retry, counted);
    const handbacks = task.handbacks + (interrupted ? 1 : 0);
    const moved = await repos.transitions.tasks({
      ids: [task.id],
      from: ['RUNNING'],
      to: 'READY',
      set: {
        attempt: task.attempt + 1,
        handbacks,
        ready_at: uow.now + delayMs,
        error,
        ...reportSet(report),
        lease_outcome: outcome,
        worker_id: null,
      },
      guard: { attempt: task.attempt },
      reason: `attempt ${task.attempt} failed: ${error.code ?? 'ERROR'}; retry in ${delayMs} ms`,
      known: { workflow_id: task.workflow_id, attempt: task.attempt + 1 },
    });
    if (moved.length && wf.state === 'RUNNING') uow.taskReady({ ...task, attempt: task.attempt + 1 }, delayMs);
    return;
  }
  const set = { error, ...reportSet(report), lease_outcome: outcome };
  const moved = await repos.transitions.tasks({
    ids: [task.id],
    from: ['RUNNING'],
    to: 'ERROR',
    set,
    reason: `failed: ${error.code ?? 'ERROR'}`,
    known: task,
  });
  if (moved.length)
    uow.record({
      kind: 'failed-for-good',
      wf,
      task: Object.assign(task, set, { state: 'ERROR' as const, finished_at: uow.now }),
    });
}

/** A task is ERROR with no retry left: its matching on_error handlers start, or the failure is unhandled. */
export async function failedForGood(uow: UnitOfWork, wf: WorkflowEntity, task: TaskEntity): Promise<void> {
  uow.endedAny = true;
  const entry = isTerminalWorkflow(wf.state)
    ? undefined
    : matchOnError(task.on_error, task.error?.code, task.exit_code);
  if (entry && (await startHandlers(uow, wf, task, entry.run as unknown as TaskSpecLike[]))) {
    uow.tasksFinished([task.id]);
    return;
  }
  await unhandledFailure(uow, wf, task);
  uow.record({ kind: 'settled', wf, tasks: [task] });
}

/**
 * A handler of `parentId` settled: once every handler of that failure is done, the
 * failure is handled if all succeeded (its dependents go on), else unhandled.
 */
export async function handlerSettled(uow: UnitOfWork, wf: WorkflowEntity, parentId: string): Promise<void> {
  const { repos } = uow;
  const parent = await repos.tasks.get(parentId);
  if (!parent || !parent.handling) return;
  const handlers = await repos.tasks.handlersOf(parentId, parent.finished_at ?? 0);
  if (handlers.some((h) => h.state === 'WAITING' || h.state === 'READY' || h.state === 'RUNNING' || h.handling)) return;
  const handled = handlers.every((h) => h.state === 'SUCCESS' || (h.state === 'ERROR' && h.handled));
  const moved = await repos.transitions.tasks({
    ids: [parentId],
    from: ['ERROR'],
    flags: { handling: false, handled },
    reason: handled ? 'every on_error handler succeeded: handled' : 'an on_error handler failed: unhandled',
  });
  if (moved.length === 0) return;
  Object.assign(parent, { handling: false, handled, updated_at: uow.now });
  if (!handled) await unhandledFailure(uow, wf, parent);
  uow.record({ kind: 'settled', wf, tasks: [parent] });
}

async function startHandlers(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  task: TaskEntity,
  run: TaskSpecLike[],
): Promise<boolean> {
  const failure = {
    error: task.error,
    failed_task: { id: task.id, name: task.name, attempt: task.attempt, exit_code: task.exit_code },
  };
  // A task that fails again after a rerun runs its handlers again, under suffixed names.
  const wanted = run.map((r) => r.name).filter((n): n is string => !!n);
  const used = await uow.repos.tasks.existingNames(wf.id, wanted);
  const suffix = used.size > 0 ? `.${task.attempt}` : '';
  const specs = run.map((r) => ({
    ...r,
    name: r.name ? `${r.name}${suffix}` : undefined,
    requires: (r.requires ?? []).map((n) => (wanted.includes(n) ? `${n}${suffix}` : n)),
    input: { ...(r.input ?? {}), ...failure },
  }));
  try {
    await addTasks(uow, wf, specs, {
      kind: 'handler',
      parentId: task.id,
      engineAdded: true,
      createdBy: task.created_by,
    });
  } catch (e) {
    uow.logger.event('warn', 'engine', 'on_error handlers could not be added; the failure is unhandled', {
      task_id: task.id,
      error: e instanceof Error ? e.message : String(e),
    });
    return false;
  }
  await uow.repos.transitions.tasks({
    ids: [task.id],
    from: ['ERROR'],
    flags: { handling: true },
    reason: `on_error handlers started: ${specs.length}`,
  });
  task.handling = true;
  return true;
}

/** The workflow's on_failure, for a failure nothing handled. */
async function unhandledFailure(uow: UnitOfWork, wf: WorkflowEntity, task: TaskEntity): Promise<void> {
  // An ended workflow's open tasks are being stopped already (completion.ts continueStopping).
  if (isTerminalWorkflow(wf.state)) return;
  const message = `task ${task.name} failed: ${task.error?.message ?? 'unknown error'}`;
  switch (wf.on_failure) {
    case 'fail':
      await stopWorkflow(uow, wf, 'ERROR', message);
      return;
    case 'rollback':
      // A revert failed: the reverts ordered after it are skipped by readiness (it is their
      // dependency), the others go on, and the workflow ends ERROR once they are done.
      if (wf.rollback_started) return;
      // Stop everything now; the reverts start once nothing runs any more (completion.ts).
      await stopTasks(uow, wf, 'SKIPPED', SKIP_CODES.workflowFailed, message);
      return;
    case 'continue':
      return; // only the dependents are skipped, by readiness
  }
}
