import { chmod, chown, mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LeasedTask } from '@tagflow/client';
import type { WorkerConfig } from '../cli/config.js';
import type { Logger } from '../cli/logger.js';
import type { RunAsPool, RunAsUser } from '../cli/run-as.js';
import { ExecutionFailure, type ExecutionResult, type ExecutorContext } from '../executors/executor.js';
import type { AttemptScope, Isolation } from '../executors/isolation.js';
import { runProcess } from '../executors/process-runner.js';
import type { ExecutorRegistry } from '../executors/registry.js';
import { writeTaskFile } from '../executors/task-files.js';
import type { LogStreamer } from './log-streamer.js';
import { taskEnvironment } from './task-env.js';

/** What one attempt holds while it runs: its directory, its user and its scope under --run-as. */
export interface Attempt {
  dir?: string;
  user?: RunAsUser;
  scope?: AttemptScope;
}

/**
 * One attempt of a task on this machine, from its start to its end: under --run-as a user
 * of its own and a scope that keeps its processes apart, a directory of its own, the
 * executor's context (environment, processes, files, output), and whatever the executor
 * does or throws turned into a result. The lease, the time limit and the report are the
 * agent's.
 */
export class AttemptRunner {
  private helperDir = '';

  constructor(
    private readonly config: WorkerConfig,
    private readonly executors: ExecutorRegistry,
    private readonly log: Logger,
    private readonly output: LogStreamer,
    /** With `--run-as`: the users tasks run as (the worker is root), and how attempts are kept apart. */
    private readonly runAs?: { users: RunAsPool; isolation: Isolation },
  ) {}

  /** Once, before the first attempt: the helper command every attempt finds on its PATH. */
  async prepare(): Promise<void> {
    this.helperDir = await this.installHelper();
  }

  /** An attempt starts: under --run-as it takes a user (given back by `end`). */
  begin(): Attempt {
    return { user: this.runAs?.users.take() };
  }

  /**
   * Runs the attempt with its task's executor. Never throws: an attempt that cannot start,
   * a missing executor and an executor's error are failures (ExecutionFailure says whether
   * to retry; any other error is retried). Call `end` afterwards, whatever happened.
   */
  async run(
    task: LeasedTask,
    attempt: Attempt,
    signal: AbortSignal,
    heartbeat: (progress: unknown) => void,
  ): Promise<ExecutionResult> {
    const { user } = attempt;
    try {
      const executor = this.executors.get(task.action.type);
      if (!executor) {
        return {
          status: 'failure',
          code: 'UNSUPPORTED_ACTION',
          retryable: false,
          message: `this worker has no executor for action type "${task.action.type}" (it knows: ${this.executors.types().join(', ')})`,
        };
      }
      // An in-process executor starts nothing that needs a scope or a directory (a quarter
      // of a busy worker's time went to making and removing them for noop tasks).
      if (!executor.inProcess) {
        attempt.scope = user && (await this.runAs!.isolation.open(user));
        attempt.dir = await mkdtemp(join(this.config.workDir, `${task.id}-`));
        if (user) await chown(attempt.dir, user.uid, user.gid);
      }
      return await executor.run(this.context(task, signal, attempt, heartbeat));
    } catch (e) {
      return e instanceof ExecutionFailure
        ? { status: 'failure', message: e.message, code: e.code, retryable: e.retryable }
        : {
            status: 'failure',
            message: `executor error: ${(e as Error).message}`,
            code: 'EXECUTOR_ERROR',
            retryable: true,
          };
    }
  }

  private context(
    task: LeasedTask,
    signal: AbortSignal,
    attempt: Attempt,
    heartbeat: (progress: unknown) => void,
  ): ExecutorContext {
    const { dir, user, scope } = attempt;
    // No directory: an in-process executor's attempt, which may start and write nothing.
    const inProcess = (what: string) =>
      Promise.reject(new Error(`the ${task.action.type} executor runs in process: it may not ${what}`));
    let env: Record<string, string> | undefined; // made when a process first needs it
    const envOf = () =>
      (env ??= taskEnvironment(process.env, task, { api: this.config.api, helperDir: this.helperDir, user }));
    return {
      task,
      attempt: task.attempt,
      signal,
      heartbeat,
      log: (msg, fields) => this.log('info', msg, { task_id: task.id, ...fields }),
      workDir: dir ?? '',
      run: (command, args, opts = {}) =>
        dir === undefined
          ? inProcess('start processes')
          : runProcess(command, args, {
              cwd: opts.cwd ?? dir,
              env: { ...envOf(), ...opts.env },
              signal,
              user,
              scope,
              onOutput: (stream, chunk) => this.output.write(task.lease.token, stream, chunk),
            }),
      writeFile: (path, data, mode = 0o600) =>
        dir === undefined ? inProcess('write files') : writeTaskFile(path, data, mode, user),
    };
  }

  /**
   * An attempt is over: every process of it is killed first (its scope: what left the process
   * group too), then its directory goes; only then may its user run another attempt.
   */
  async end({ dir, user, scope }: Attempt): Promise<void> {
    await scope?.killAll();
    if (dir) await this.removeAttemptDir(dir, user);
    await scope
      ?.close()
      .catch((e: unknown) => this.log('warn', "could not remove an attempt's cgroup", { error: (e as Error).message }));
    if (user) this.runAs!.users.give(user);
  }

  /**
   * Removes an attempt's directory. Under --run-as it is the task's user's: its content is
   * removed by that user (root walking a directory a task owns could be sent through a link
   * swapped in meanwhile), then the empty directory by root.
   */
  private async removeAttemptDir(dir: string, user: RunAsUser | undefined): Promise<void> {
    try {
      if (!user) {
        await rm(dir, { recursive: true, force: true });
        return;
      }
      await runProcess('/usr/bin/find', [dir, '-mindepth', '1', '-delete'], {
        cwd: '/',
        env: { PATH: '/usr/bin:/bin' },
        signal: new AbortController().signal,
        user,
      });
      await rmdir(dir);
    } catch (e) {
      this.log('warn', 'could not remove an attempt directory', { dir, error: (e as Error).message });
    }
  }

  /** A `tagflow-worker` command for tasks' PATH, running this very worker build. */
  private async installHelper(): Promise<string> {
    const dir = join(this.config.workDir, 'bin');
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o755); // tasks run it, as another user too
    const main = fileURLToPath(new URL('../main.js', import.meta.url));
    await writeFile(join(dir, 'tagflow-worker'), `#!/bin/sh\nexec '${process.execPath}' '${main}' "$@"\n`, {
      mode: 0o755,
    });
    return dir;
  }
}
