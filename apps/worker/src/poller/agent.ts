import { chmod, lstat, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import {
  backoffDelay,
  TAGFLOW_VERSION,
  TagflowApiError,
  type BatchReport,
  type LeasedTask,
  type TagflowClient,
} from '@tagflow/client';
import type { WorkerConfig } from '../cli/config.js';
import type { Logger } from '../cli/logger.js';
import { ExecutionStop, type ExecutionResult } from '../executors/executor.js';
import type { ExecutorRegistry } from '../executors/registry.js';
import type { RunAsPool } from '../cli/run-as.js';
import type { Isolation } from '../executors/isolation.js';
import { AttemptRunner } from './attempt-runner.js';
import { LeaseKeeper } from './lease-keeper.js';
import { LogStreamer } from './log-streamer.js';
import { Reporter } from './reporter.js';

interface Running {
  task: LeasedTask;
  abort: AbortController;
  /** Settles once the attempt has run and its report was judged (or dropped). */
  done: Promise<void>;
  /** Executing (holds a slot); false once only its report is on its way. */
  executing: boolean;
}

/**
 * The worker's life: register, then long-poll for as many tasks as it has free slots,
 * run each with its executor, and report the result.
 *
 * - Reports ride on the next poll (`POST /v1/tasks/report` with a poll): a task ends, its
 *   slot frees, and one request carries its report and asks for the next task. While a
 *   poll is parked, reports go at once in a request of their own (see Reporter).
 * - One heartbeat per worker extends every lease that is due (see LeaseKeeper); a
 *   cancel request stops the task (reported CANCELLED), a lost lease stops it unreported.
 * - Output is streamed to the API while the task runs (see LogStreamer); the report
 *   still carries the last 64 KiB.
 * - Each attempt runs in a directory of its own and, under --run-as, as a user of its own
 *   kept apart from the others (see AttemptRunner).
 * - stop(): no new polls; running tasks get the grace period, then are stopped and
 *   reported as a retryable WORKER_SHUTDOWN failure so another worker takes them.
 */
export class Agent {
  private readonly running = new Map<string, Running>();
  private readonly pollAbort = new AbortController();
  private stopping = false;
  private workerId: string | null = null;
  private slotFreed: (() => void) | null = null;
  private readonly reporter: Reporter;
  private readonly leases: LeaseKeeper;
  private readonly output: LogStreamer;
  private readonly attempts: AttemptRunner;

  constructor(
    private readonly config: WorkerConfig,
    private readonly client: TagflowClient,
    private readonly executors: ExecutorRegistry,
    private readonly log: Logger,
    /** With `--run-as`: the users tasks run as (the worker is root), and how attempts are kept apart. */
    private readonly runAs?: { users: RunAsPool; isolation: Isolation },
  ) {
    this.reporter = new Reporter(
      client,
      (level, msg, fields) => this.log(level, msg, fields),
      () => this.wakePoller(),
    );
    this.leases = new LeaseKeeper(
      client,
      () => this.workerId,
      (msg, fields) => this.log('warn', msg, fields),
    );
    this.output = new LogStreamer(client, (msg, fields) => this.log('warn', msg, fields));
    this.attempts = new AttemptRunner(config, executors, log, this.output, runAs);
  }

  get id(): string | null {
    return this.workerId;
  }

  async run(): Promise<void> {
    // Under --run-as the task's user must reach its own attempt directory inside: it may
    // pass through (x) but not list (r) the worker's directory.
    await privateDir(this.config.workDir, this.runAs ? 0o711 : 0o700);
    await this.attempts.prepare();
    await this.register();
    let failures = 0;
    while (!this.stopping) {
      const free = this.config.concurrency - this.executing();
      if (free <= 0) {
        if (this.reporter.pending > 0) void this.reporter.flush();
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        this.slotFreed = null;
        continue;
      }
      // Reports already on their way are answered before more work is asked for.
      await this.reporter.sent();
      const reports = this.reporter.take();
      try {
        const poll = {
          tags: this.config.tags,
          worker_id: this.workerId ?? undefined,
          wait_s: this.config.pollWaitS,
          max_tasks: free,
        };
        let tasks: LeasedTask[];
        if (reports.length === 0) {
          tasks = await this.client.poll(poll, this.pollAbort.signal);
        } else {
          const answer = await this.client.report(
            reports.map((r) => r.report),
            poll,
            this.pollAbort.signal,
          );
          this.reporter.settle(reports, answer.results);
          tasks = answer.tasks;
        }
        failures = 0;
        for (const task of tasks) this.launch(task);
      } catch (e) {
        // Sent once, so its reports may or may not have been applied: they are sent again
        // (a report already applied is answered the same way).
        this.reporter.giveBack(reports);
        if (this.stopping) break;
        if (e instanceof TagflowApiError && e.code === 'WORKER_NOT_FOUND') {
          this.log('warn', 'the API does not know this worker any more; registering again');
          await this.register();
          continue;
        }
        if (e instanceof TagflowApiError && e.code === 'WORKER_STOPPING') {
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

  private executing(): number {
    let n = 0;
    for (const r of this.running.values()) if (r.executing) n++;
    return n;
  }

  /** A report is queued: when the poll loop waits for a free slot, it carries it (true). */
  private wakePoller(): boolean {
    if (this.stopping || !this.slotFreed) return false;
    this.slotFreed();
    return true;
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
    await this.runAs?.isolation.close();
    await this.reporter.flush();
    this.leases.stop();
    this.output.stop();
  }

  private async register(): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        const w = await this.client.registerWorker({
          name: this.config.name,
          tags: this.config.tags,
          hostname: hostname(),
          version: TAGFLOW_VERSION,
        });
        this.workerId = w.id;
        this.log('info', 'registered', {
          worker_id: w.id,
          name: w.name,
          tags: w.tags,
          api: this.config.api,
          concurrency: this.config.concurrency,
        });
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
    const entry: Running = { task, abort, done: Promise.resolve(), executing: true };
    // By lease, not task: the next attempt of a task may arrive here before this one's report is settled.
    this.running.set(task.lease.token, entry);
    entry.done = this.execute(task, entry)
      .catch((e: unknown) =>
        this.log('error', 'task handling failed', { task_id: task.id, error: (e as Error).message }),
      )
      .finally(() => {
        this.running.delete(task.lease.token);
        this.freeSlot(entry);
      });
  }

  private freeSlot(entry: Running): void {
    if (!entry.executing) return;
    entry.executing = false;
    this.slotFreed?.();
  }

  private async execute(task: LeasedTask, entry: Running): Promise<void> {
    const { abort } = entry;
    this.log('info', 'task started', {
      task_id: task.id,
      name: task.name,
      attempt: task.attempt,
      action: task.action.type,
    });
    let progress: unknown = undefined;
    this.leases.hold(task, abort, () => progress);
    this.output.open(task);
    const timeout = task.timeout_s
      ? setTimeout(() => abort.abort(new ExecutionStop('timeout')), task.timeout_s * 1000)
      : undefined;
    const attempt = this.attempts.begin();
    let result: ExecutionResult;
    try {
      result = await this.attempts.run(task, attempt, abort.signal, (p) => (progress = p));
    } finally {
      this.leases.release(task.lease.token);
      clearTimeout(timeout);
      await this.attempts.end(attempt);
    }

    const stop = abort.signal.aborted ? (abort.signal.reason as ExecutionStop).why : null;
    if (stop === 'lease-lost') {
      await this.output.close(task.lease.token, 0);
      this.log('warn', 'task stopped: its lease is gone, so it is not reported', { task_id: task.id });
      return;
    }
    await this.output.close(task.lease.token);
    if (stop) {
      const byStop: Record<
        'cancelled' | 'timeout' | 'shutdown',
        { message: string; code: string; retryable: boolean }
      > = {
        cancelled: { message: 'cancelled on request; its processes were stopped', code: 'CANCELLED', retryable: false },
        timeout: {
          message: `ran longer than timeout_s=${task.timeout_s}; its processes were stopped`,
          code: 'TIMEOUT',
          retryable: true,
        },
        shutdown: {
          message: 'the worker stopped before the task finished; it will run again elsewhere',
          code: 'WORKER_SHUTDOWN',
          retryable: true,
        },
      };
      result = {
        status: 'failure',
        ...byStop[stop],
        stdout: result.stdout,
        stderr: result.stderr,
        exitCode: result.exitCode,
      };
    }
    this.freeSlot(entry);
    await this.report(task, result);
  }

  private async report(task: LeasedTask, result: ExecutionResult): Promise<void> {
    const logs = { stdout: result.stdout, stderr: result.stderr, exit_code: result.exitCode };
    const report: BatchReport =
      result.status === 'success'
        ? { task_id: task.id, lease_token: task.lease.token, status: 'complete', output: result.output ?? {}, ...logs }
        : {
            task_id: task.id,
            lease_token: task.lease.token,
            status: 'fail',
            error: { message: result.message, code: result.code, retryable: result.retryable },
            ...logs,
          };
    // Logged as it ends: the report may ride on the next poll, up to its wait later. A report
    // the API refuses is logged by the reporter.
    if (result.status === 'success') this.log('info', 'task succeeded', { task_id: task.id, name: task.name });
    else
      this.log('info', 'task failed', {
        task_id: task.id,
        name: task.name,
        code: result.code,
        message: result.message,
      });
    await this.reporter.submit(report);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.pollAbort.signal.addEventListener(
        'abort',
        () => {
          clearTimeout(t);
          resolve();
        },
        { once: true },
      );
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
  if (st.isSymbolicLink() || !st.isDirectory())
    throw new Error(`work directory ${dir} is not a directory (a link is refused: it could point anywhere)`);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new Error(
      `work directory ${dir} belongs to another user (uid ${st.uid}); give --work-dir a directory of your own`,
    );
  }
  if ((st.mode & 0o022) !== 0)
    throw new Error(
      `work directory ${dir} can be written by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 700 it`,
    );
  if ((st.mode & 0o777) !== mode) await chmod(dir, mode);
}
