import type { JsonObject, LeasedTask } from '@tagflow/client';

/**
 * What an executor is given to run one attempt of one task. Plugins receive the same.
 *
 * - `signal` aborts when the task is cancelled, its lease is lost, it runs out of time,
 *   or the worker stops; `signal.reason` is an ExecutionStop telling which.
 * - `heartbeat(progress)` records progress (sent with the next heartbeat; heartbeats
 *   themselves are sent by the agent).
 * - `run(command, args, options)` runs a process the way the shell executor does:
 *   its own process group, killed with the task, output captured and bounded.
 */
export interface ExecutorContext {
  task: LeasedTask;
  attempt: number;
  signal: AbortSignal;
  heartbeat(progress: unknown): void;
  log(message: string, fields?: Record<string, unknown>): void;
  /** A directory of this attempt's own (the task's user's, under `--run-as`), removed afterwards. */
  workDir: string;
  /** Runs a process as the task's user, in its own process group, stopped with the attempt. */
  run(command: string, args: string[], options?: RunOptions): Promise<ProcessResult>;
  /** Writes a new file in workDir that the task's processes may read or write (theirs under `--run-as`). */
  writeFile(path: string, data: string, mode?: number): Promise<void>;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
}

/** Who a task's processes run as (`--run-as`); absent: the worker's own user. */
export interface ProcessUser {
  uid: number;
  gid: number;
}

export interface ProcessResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** How an attempt ended, as the agent reports it. */
export type ExecutionResult =
  | { status: 'success'; output?: JsonObject; stdout?: string; stderr?: string; exitCode?: number }
  | {
      status: 'failure';
      message: string;
      code: string;
      retryable: boolean;
      stdout?: string;
      stderr?: string;
      exitCode?: number;
    };

export interface Executor {
  /** The action type it runs, e.g. "shell" or "ansible-playbook". */
  type: string;
  /**
   * Runs inside the worker, starting no process and writing no file (noop, echo): its
   * attempts get no directory and no isolation scope (their context's `workDir` is empty;
   * `run` and `writeFile` fail). Absent: false.
   */
  readonly inProcess?: boolean;
  run(ctx: ExecutorContext): Promise<ExecutionResult>;
}

/** Why an execution was stopped from outside. */
export class ExecutionStop extends Error {
  constructor(readonly why: 'cancelled' | 'lease-lost' | 'timeout' | 'shutdown') {
    super(why);
  }
}

/**
 * A failure an executor throws to choose its code; any other thrown error fails with
 * EXECUTOR_ERROR. Every failure is retryable (by the task's retry policy) unless it says
 * otherwise: one default, as the API's `retryable` has.
 */
export class ExecutionFailure extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly retryable = true,
  ) {
    super(message);
  }
}
