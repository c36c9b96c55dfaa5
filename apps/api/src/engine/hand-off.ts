import type { ClaimJob, TaskEntity } from '@tagflow/persistence';
import type { Effect } from './unit-of-work.js';

/** A task an operation made READY, as its effect says. */
export type ReadyTask = Extract<Effect, { kind: 'task-ready' }>;

/**
 * Where tasks an operation made READY may go without a trip through the queue: polls
 * parked on this replica (dispatch/parked-polls.ts). The engine asks for a plan before it
 * commits, writes the plan's leases in the same transaction, and hands the leased tasks
 * over once it has committed; a transaction that does not commit cancels its plan.
 */
export interface HandOffPort {
  /** Polls for some of `ready` (reserved until deliver or cancel), or null when none fits. */
  plan(ready: readonly ReadyTask[]): HandOffPlan | null;
}

export interface HandOffPlan {
  /** The leases to write: a token each, for the poll that takes the task. */
  readonly jobs: readonly ClaimJob[];
  /** After commit: each reserved poll gets the tasks leased for it (none, if they moved on). */
  deliver(leased: readonly TaskEntity[]): void;
  /** The transaction did not commit: the reserved polls wait on. */
  cancel(): void;
}

export const HAND_OFF_PORT = Symbol('HAND_OFF_PORT');
