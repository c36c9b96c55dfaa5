import { chmod, chown, lstat, mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backoffDelay, TAGFLOW_VERSION, TagflowApiError, type Failure, type LeasedTask, type TagflowClient } from '@tagflow/client';
import type { WorkerConfig } from '../cli/config.js';
import type { Logger } from '../cli/logger.js';
import { ExecutionFailure, ExecutionStop, type ExecutionResult, type ExecutorContext } from '../executors/executor.js';
import { runProcess } from '../executors/process-runner.js';
import type { ExecutorRegistry } from '../executors/registry.js';
import { writeTaskFile } from '../executors/task-files.js';
import type { RunAsUser } from '../cli/run-as.js';

interface Running {
  task: LeasedTask;
  abort: AbortController;
  done: Promise<void>;
}

/** Environment variables of the worker itself that its tasks must not inherit. */
const PRIVATE_ENV = ['TAGFLOW_TOKEN', 'TAGFLOW_TOKEN_FILE', 'TAGFLOW_ADMIN_TOKEN', 'API_TOKEN'];
/**
 * Under --run-as, the only variables of the worker's (root's) environment a task gets: a
 * unit's other settings (credentials, DATABASE_URL) do not cross to the task's user.
 */
const RUN_AS_ENV = /^(PATH|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TERM|TAGFLOW_API_URL)$/;

/**
 * The worker's life: register, then long-poll for as many tasks as it has free slots,
 * run each with its executor, heartbeat it well inside its lease, and report the result.
 *
 * - A heartbeat answer with `cancel_requested` aborts the task (reported CANCELLED).
 * - A heartbeat refused with 409/404 means the lease is gone: the task is stopped and
 *   not reported (another attempt owns it now).
 * - Reports are retried until accepted; a 409 ends the retry (the task was taken back).
 * - stop(): no new polls; running tasks get the grace period, then are stopped and
 *   reported as a retryable WORKER_SHUTDOWN failure so another worker takes them.
 */
export class Agent {
  private readonly running = new Map<string, Running>();
  private readonly pollAbort = new AbortController();
  private stopping = false;
  private workerId: string | null = null;
  private slotFreed: (() => void) | null = null;
  private helperDir = '';

  constructor(
    private readonly config: WorkerConfig,
    private readonly client: TagflowClient,
    private readonly executors: ExecutorRegistry,
    private readonly log: Logger,
    /** With `--run-as`: the user tasks run as (the worker is root). */
    private readonly runAs?: RunAsUser,
  ) {}

  get id(): string | null {
    return this.workerId;
  }

  async run(): Promise<void> {
    // Under --run-as the task's user must reach its own attempt directory inside: it may
    // pass through (x) but not list (r) the worker's directory.
    await privateDir(this.config.workDir, this.runAs ? 0o711 : 0o700);
    this.helperDir = await this.installHelper();
    await this.register();
    let failures = 0;
    while (!this.stopping) {
      const free = this.config.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        continue;
      }
      try {
        const tasks = await this.client.poll(
          { tags: this.config.tags, worker_id: this.workerId ?? undefined, wait_s: this.config.pollWaitS, max_tasks: free },
          this.pollAbort.signal,
        );
        failures = 0;
        for (const task of tasks) this.launch(task);
      } catch (e) {
        if (this.stopping) break;
        if (e instanceof TagflowApiError && e.status === 404 && /worker/.test(e.message)) {
          this.log('warn', 'the API does not know this worker any more; registering again');
          await this.register();
          continue;
        }
        if (e instanceof TagflowApiError && e.status === 409 && /registers again/.test(e.message)) {
          // A hand-back under this id said it was stopping (this process did not): start afresh.
          this.log('warn', 'the API holds this worker as stopping; registering again', { message: e.message });
          await this.register();
          continue;
        }
        const delay = backoffDelay(Math.min(failures++, 6), { baseMs: 500, maxMs: 15_000 });
        this.log('warn', 'poll failed; retrying', { error: (e as Error).message, retry_in_ms: delay });
        await this.pause(delay);
      }
    }
  }

  /** Graceful stop: see the class comment. Resolves when every task has been reported or dropped. */
  async stop(graceMs: number): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.pollAbort.abort();
      this.slotFreed?.();
    }
    const all = () => Promise.allSettled([...this.running.values()].map((r) => r.done));
    if (this.running.size > 0) {
      this.log('info', 'stopping: waiting for running tasks', { tasks: this.running.size, grace_s: graceMs / 1000 });
      const finished = await Promise.race([all().then(() => true), delay(graceMs).then(() => false)]);
      if (!finished) {
        this.log('warn', 'grace period over; stopping the remaining tasks', { tasks: this.running.size });
        for (const r of this.running.values()) r.abort.abort(new ExecutionStop('shutdown'));
      }
    }
    await all();
  }

  private async register(): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        const w = await this.client.registerWorker({ name: this.config.name, tags: this.config.tags, hostname: hostname(), version: TAGFLOW_VERSION });
        this.workerId = w.id;
        this.log('info', 'registered', { worker_id: w.id, name: w.name, tags: w.tags, api: this.config.api, concurrency: this.config.concurrency });
        return;
      } catch (e) {
        if (e instanceof TagflowApiError && e.status >= 400 && e.status < 500) throw e; // bad name, bad token: say so and stop
        const wait = backoffDelay(Math.min(attempt, 6), { baseMs: 500, maxMs: 15_000 });
        this.log('warn', 'cannot register yet; retrying', { error: (e as Error).message, retry_in_ms: wait });
        await this.pause(wait);
      }
    }
  }

  private launch(task: LeasedTask): void {
    const abort = new AbortController();
    const entry: Running = { task, abort, done: Promise.resolve() };
    this.running.set(task.id, entry);
    entry.done = this.execute(task, abort)
      .catch((e: unknown) => this.log('error', 'task handling failed', { task_id: task.id, error: (e as Error).message }))
      .finally(() => {
        this.running.delete(task.id);
        this.slotFreed?.();
        this.slotFreed = null;
      });
  }

  private async execute(task: LeasedTask, abort: AbortController): Promise<void> {
    this.log('info', 'task started', { task_id: task.id, name: task.name, attempt: task.attempt, action: task.action.type });
    let progress: unknown = undefined;
    const leaseMs = task.lease_s * 1000;
    const beat = setInterval(() => void this.heartbeat(task, abort, () => progress), Math.max(500, Math.floor(leaseMs / 3)));
    const timeout = task.timeout_s ? setTimeout(() => abort.abort(new ExecutionStop('timeout')), task.timeout_s * 1000) : undefined;
    const workDir = await mkdtemp(join(this.config.workDir, `${task.id}-`));
    if (this.runAs) await chown(workDir, this.runAs.uid, this.runAs.gid);
    const passed = (k: string) => (this.runAs ? RUN_AS_ENV.test(k) : !PRIVATE_ENV.includes(k));
    const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && passed(k))) as Record<string, string>;
    // What `tagflow-worker data ...` needs inside the task: its workflow and its lease.
    const taskEnv = {
      TAGFLOW_API_URL: this.config.api,
      TAGFLOW_WORKFLOW_ID: task.workflow_id,
      TAGFLOW_TASK_ID: task.id,
      TAGFLOW_ATTEMPT: String(task.attempt),
      TAGFLOW_LEASE_TOKEN: task.lease.token,
      PATH: `${this.helperDir}:${childEnv.PATH ?? '/usr/local/bin:/usr/bin:/bin'}`,
      ...(this.runAs ? { HOME: this.runAs.home, USER: this.runAs.name, LOGNAME: this.runAs.name } : {}),
    };
    const ctx: ExecutorContext = {
      task,
      attempt: task.attempt,
      signal: abort.signal,
      heartbeat: (p) => (progress = p),
      log: (msg, fields) => this.log('info', msg, { task_id: task.id, ...fields }),
      workDir,
      run: (command, args, opts = {}) =>
        runProcess(command, args, { cwd: opts.cwd ?? workDir, env: { ...childEnv, ...taskEnv, ...opts.env }, signal: abort.signal, user: this.runAs }),
      writeFile: (path, data, mode = 0o600) => writeTaskFile(path, data, mode, this.runAs),
    };
    let result: ExecutionResult;
    try {
      const executor = this.executors.get(task.action.type);
      if (!executor) {
        result = {
          status: 'failure', code: 'UNSUPPORTED_ACTION', retryable: false,
          message: `this worker has no executor for action type "${task.action.type}" (it knows: ${this.executors.types().join(', ')})`,
        };
      } else {
        result = await executor.run(ctx);
      }
    } catch (e) {
      result = e instanceof ExecutionFailure
        ? { status: 'failure', message: e.message, code: e.code, retryable: e.retryable }
        : { status: 'failure', message: `executor error: ${(e as Error).message}`, code: 'EXECUTOR_ERROR', retryable: true };
    } finally {
      clearInterval(beat);
      clearTimeout(timeout);
      await this.removeAttemptDir(workDir);
    }

    const stop = abort.signal.aborted ? (abort.signal.reason as ExecutionStop).why : null;
    if (stop === 'lease-lost') {
      this.log('warn', 'task stopped: its lease is gone, so it is not reported', { task_id: task.id });
      return;
    }
    if (stop) {
      const byStop: Record<'cancelled' | 'timeout' | 'shutdown', Required<Failure>> = {
        cancelled: { message: 'cancelled on request; the process group was stopped', code: 'CANCELLED', retryable: false },
        timeout: { message: `ran longer than timeout_s=${task.timeout_s}; the process group was stopped`, code: 'TIMEOUT', retryable: true },
        shutdown: { message: 'the worker stopped before the task finished; it will run again elsewhere', code: 'WORKER_SHUTDOWN', retryable: true },
      };
      result = { status: 'failure', ...byStop[stop], stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode };
    }
    await this.report(task, result);
  }

  private async heartbeat(task: LeasedTask, abort: AbortController, progress: () => unknown): Promise<void> {
    if (abort.signal.aborted) return;
    try {
      const answer = await this.client.heartbeat(task.id, task.lease.token, progress());
      if (answer.cancel_requested && !abort.signal.aborted) {
        this.log('info', 'cancel requested; stopping the task', { task_id: task.id });
        abort.abort(new ExecutionStop('cancelled'));
      }
    } catch (e) {
      if (e instanceof TagflowApiError && (e.status === 409 || e.status === 404)) {
        if (!abort.signal.aborted) abort.abort(new ExecutionStop('lease-lost'));
        return;
      }
      // The API is away: keep running; the lease decides once it answers again.
      this.log('warn', 'heartbeat failed', { task_id: task.id, error: (e as Error).message });
    }
  }

  private async report(task: LeasedTask, result: ExecutionResult): Promise<void> {
    const retry = { attempts: Infinity, baseMs: 250, maxMs: 5000 };
    const logs = { stdout: result.stdout, stderr: result.stderr, exit_code: result.exitCode };
    try {
      if (result.status === 'success') {
        await this.client.complete(task.id, task.lease.token, result.output ?? {}, logs, retry);
        this.log('info', 'task succeeded', { task_id: task.id, name: task.name });
      } else {
        await this.client.fail(task.id, task.lease.token, { message: result.message, code: result.code, retryable: result.retryable }, logs, retry);
        this.log('info', 'task failed', { task_id: task.id, name: task.name, code: result.code, message: result.message });
      }
    } catch (e) {
      if (e instanceof TagflowApiError && (e.status === 409 || e.status === 404)) {
        this.log('warn', 'report refused: the task was taken back', { task_id: task.id, status: e.status, message: e.body?.message });
        return;
      }
      if (e instanceof TagflowApiError && e.status === 413) {
        // Output too large: report that instead, so the task does not hang until its lease ends.
        await this.client
          .fail(task.id, task.lease.token, { message: `the task's output was refused: ${e.body?.message ?? 'too large'}`, code: 'OUTPUT_TOO_LARGE', retryable: false }, logs, retry)
          .catch((err: unknown) => this.log('error', 'could not report', { task_id: task.id, error: (err as Error).message }));
        return;
      }
      throw e;
    }
  }

  /**
   * Removes an attempt's directory. Under --run-as it is the task's user's: its content is
   * removed by that user (root walking a directory a task owns could be sent through a link
   * swapped in meanwhile), then the empty directory by root.
   */
  private async removeAttemptDir(dir: string): Promise<void> {
    try {
      if (!this.runAs) {
        await rm(dir, { recursive: true, force: true });
        return;
      }
      await runProcess('/usr/bin/find', [dir, '-mindepth', '1', '-delete'], { cwd: '/', env: { PATH: '/usr/bin:/bin' }, signal: new AbortController().signal, user: this.runAs });
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
    await writeFile(join(dir, 'tagflow-worker'), `#!/bin/sh\nexec '${process.execPath}' '${main}' "$@"\n`, { mode: 0o755 });
    return dir;
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.pollAbort.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * The work directory holds every task's input, output and scripts: it must be the
 * worker's own. Made `mode` (0700; 0711 under --run-as) when new; refused when another
 * user owns it or others may write to it (they could plant or swap a task's files).
 */
async function privateDir(dir: string, mode: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  const st = await lstat(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) throw new Error(`work directory ${dir} is not a directory (a link is refused: it could point anywhere)`);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new Error(`work directory ${dir} belongs to another user (uid ${st.uid}); give --work-dir a directory of your own`);
  }
  if ((st.mode & 0o022) !== 0) throw new Error(`work directory ${dir} can be written by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 700 it`);
  if ((st.mode & 0o777) !== mode) await chmod(dir, mode);
}
