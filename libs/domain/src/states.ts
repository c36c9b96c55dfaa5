/**
 * Task and workflow state machines. Every state change in Tagflow is checked
 * against these tables before the guarded UPDATE that applies it.
 */

export const TASK_STATES = ['WAITING', 'READY', 'RUNNING', 'SUCCESS', 'ERROR', 'CANCELLED', 'SKIPPED'] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const WORKFLOW_STATES = ['RUNNING', 'PAUSED', 'SUCCESS', 'ERROR', 'CANCELLED'] as const;
export type WorkflowState = (typeof WORKFLOW_STATES)[number];

export const TERMINAL_TASK_STATES: readonly TaskState[] = ['SUCCESS', 'ERROR', 'CANCELLED', 'SKIPPED'];
export const TERMINAL_WORKFLOW_STATES: readonly WorkflowState[] = ['SUCCESS', 'ERROR', 'CANCELLED'];

/** Allowed task transitions: from -> the states it may move to. */
export const TASK_TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  // A task leaves WAITING when its dependencies are met, can never be met (SKIPPED, or
  // ERROR with code DEADLOCK when a data key it reads has no producer left), or it is cancelled.
  WAITING: ['READY', 'SKIPPED', 'CANCELLED', 'ERROR'],
  // READY -> WAITING: a PATCH before it runs re-evaluates its dependencies.
  READY: ['RUNNING', 'WAITING', 'SKIPPED', 'CANCELLED'],
  // RUNNING -> READY: a failed attempt with retries left (or an expired lease).
  RUNNING: ['SUCCESS', 'ERROR', 'CANCELLED', 'READY'],
  SUCCESS: [],
  // ERROR -> READY: POST /tasks/:id/rerun; ERROR -> WAITING: the same for a DEADLOCK task,
  // whose dependencies are evaluated again.
  ERROR: ['READY', 'WAITING'],
  CANCELLED: [],
  // SKIPPED -> WAITING: the failed task it was skipped for is rerun, so it may run after all.
  SKIPPED: ['WAITING'],
};

export const WORKFLOW_TRANSITIONS: Readonly<Record<WorkflowState, readonly WorkflowState[]>> = {
  RUNNING: ['PAUSED', 'SUCCESS', 'ERROR', 'CANCELLED'],
  // Tasks already running may finish while the workflow is paused, so it can end from PAUSED too.
  PAUSED: ['RUNNING', 'SUCCESS', 'ERROR', 'CANCELLED'],
  SUCCESS: [],
  ERROR: [],
  CANCELLED: [],
};

export function canTransitionTask(from: TaskState, to: TaskState): boolean {
  return TASK_TRANSITIONS[from].includes(to);
}

export function canTransitionWorkflow(from: WorkflowState, to: WorkflowState): boolean {
  return WORKFLOW_TRANSITIONS[from].includes(to);
}

/** The states from which a task may move to `to`. */
export function taskSourcesOf(to: TaskState): TaskState[] {
  return TASK_STATES.filter((from) => TASK_TRANSITIONS[from].includes(to));
}

export function isTerminalTask(state: TaskState): boolean {
  return TERMINAL_TASK_STATES.includes(state);
}

export function isTerminalWorkflow(state: WorkflowState): boolean {
  return TERMINAL_WORKFLOW_STATES.includes(state);
}

/**
 * A task's side flags and the states in which each may change. They change through the
 * same guarded, recorded transition as the state (in place, or together with a state
 * change whose source or target is listed).
 * - handling: the task failed for good and its on_error handlers are running;
 * - handled: every handler succeeded (reset when an ERROR task is rerun);
 * - cancel_requested: asked of a running task, told on its next heartbeat (reset when a
 *   new attempt is leased, and by a rerun).
 */
export const TASK_FLAGS = {
  handling: ['ERROR'],
  handled: ['ERROR', 'READY'],
  cancel_requested: ['RUNNING', 'READY'],
} as const satisfies Record<string, readonly TaskState[]>;
export type TaskFlag = keyof typeof TASK_FLAGS;

/**
 * A task's scheduling marks: not states and not recorded as events, but each bound to one
 * state. A mark is set only while the task is in its state (a guarded UPDATE naming it) and
 * is cleared by every transition that leaves that state (TransitionRepository), so a task
 * that comes back to the state never carries an old mark.
 * - held_limit: READY, held by a full concurrency limit (set at claim, cleared on release);
 * - wake_at: WAITING, held by its `not_before` alone: evaluated again at that time.
 * (A workflow's settle mark, `settle_pending`/`settle_after`, is the settle loop's walk
 * position, written under the workflow's lock: engine/settle.ts.)
 */
export const TASK_MARKS = {
  held_limit: 'READY',
  wake_at: 'WAITING',
} as const satisfies Record<string, TaskState>;
export type TaskMark = keyof typeof TASK_MARKS;

/** A workflow's flags: sealed (no tasks may be added) and rollback_started (the reverts were added). */
export const WORKFLOW_FLAGS = {
  sealed: ['RUNNING', 'PAUSED'],
  rollback_started: ['RUNNING', 'PAUSED'],
} as const satisfies Record<string, readonly WorkflowState[]>;
export type WorkflowFlag = keyof typeof WORKFLOW_FLAGS;

/** Whether `flag` may change in a task moving from `from` to `to` (the same state for an in-place change). */
export function canChangeTaskFlag(flag: TaskFlag, from: TaskState, to: TaskState): boolean {
  const allowed: readonly TaskState[] = TASK_FLAGS[flag];
  return allowed.includes(from) || allowed.includes(to);
}

export function canChangeWorkflowFlag(flag: WorkflowFlag, state: WorkflowState): boolean {
  const allowed: readonly WorkflowState[] = WORKFLOW_FLAGS[flag];
  return allowed.includes(state);
}
