import { Inject, Injectable } from '@nestjs/common';
import { LIMITS, isTerminalTask } from '@tagflow/domain';
import { Database, type LogStreamName, type TaskEntity, type TaskLogEntity } from '@tagflow/persistence';
import { Bus } from '@tagflow/queue';
import { notFound } from '../common/errors.js';
import { storableText } from '../engine/report-fields.js';
import { JsonLogger } from '../common/logger.js';
import { LongWaits } from '../long-wait/long-waits.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { LeaseService } from '../worker-protocol/lease.service.js';
import type { EventStream } from './event-stream.js';

/** Kept per stream per attempt: the last 1 MiB, in at most 10,000 pieces (so a read is bounded however small the appends). */
const KEEP = { bytes: LIMITS.logStreamKeptBytes, pieces: 10_000 };
/** Pieces read per query while following or reading. */
const PAGE = 500;
/** A follower with nothing new looks again this often even when no announcement came (another replica's bus may be late). */
const FOLLOW_RECHECK_MS = 1000;

export interface KeptOutput {
  attempt: number;
  text: string;
  /** Older output was dropped (more than the kept 1 MiB per stream). */
  truncated: boolean;
}

/**
 * Live output of running attempts. A worker appends pieces as its task writes them (its
 * current lease only); readers get the kept text, or follow it as server-sent events
 * until the attempt ends. An attempt that streamed nothing (an older worker) is shown
 * from its report's stdout and stderr.
 */
@Injectable()
export class LogsService {
  private readonly appended: (labels?: Record<string, string>, by?: number) => void;

  constructor(
    private readonly db: Database,
    private readonly leases: LeaseService,
    private readonly bus: Bus,
    private readonly waits: LongWaits,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    metrics: MetricsService,
  ) {
    this.appended = metrics.counter('tagflow_log_bytes_total', 'Bytes of live task output appended, by stream.');
  }

  async append(
    taskId: string,
    lease: string,
    stream: LogStreamName,
    data: string,
    namespace: string,
  ): Promise<{ seq: number }> {
    const task = await this.leases.current(taskId, lease, namespace);
    const seq = await this.db.transaction((repos) =>
      repos.logs.append(
        { task_id: task.id, workflow_id: task.workflow_id, attempt: task.attempt, stream, data: storableText(data) },
        repos.now,
        KEEP,
      ),
    );
    this.appended({ stream }, Buffer.byteLength(data));
    this.bus
      .publish([{ type: 'log-appended', task: task.id }])
      .catch((e: unknown) =>
        this.logger.event(
          'debug',
          'logs',
          'could not announce appended output (followers look again within a second)',
          { error: (e as Error).message },
        ),
      );
    return { seq };
  }

  /** The kept output of an attempt (default the current one), both streams in the order written unless one is asked for. */
  async read(taskId: string, q: { attempt?: number; stream?: LogStreamName }, namespace: string): Promise<KeptOutput> {
    const task = await this.task(taskId, namespace);
    const attempt = this.attemptIn(task, q.attempt);
    const pieces: TaskLogEntity[] = [];
    for (let after = 0; ;) {
      const page = await this.db.read().logs.after(task.id, attempt, after, q.stream, PAGE);
      pieces.push(...page);
      if (page.length < PAGE) break;
      after = page[page.length - 1].id;
    }
    if (pieces.length === 0) return { attempt, ...reported(task, attempt, q.stream) };
    const first = new Map<string, TaskLogEntity>();
    for (const p of pieces) if (!first.has(p.stream)) first.set(p.stream, p);
    const truncated = [...first.values()].some((p) => p.end_offset - p.bytes > 0);
    return { attempt, text: pieces.map((p) => p.data).join(''), truncated };
  }

  /**
   * Sends the attempt's pieces after `after` as events (`stdout` / `stderr`, id = the
   * piece's seq), then each new one as it is appended, until the attempt ends: then an
   * `end` event with the task's state. Returns when done or when the client went away.
   */
  async follow(
    taskId: string,
    q: { attempt?: number; stream?: LogStreamName },
    after: number,
    out: EventStream,
    namespace: string,
  ): Promise<void> {
    let task = await this.task(taskId, namespace);
    const attempt = this.attemptIn(task, q.attempt);
    let sent = after > 0;
    for (;;) {
      if (out.closed) return;
      const page = await this.db.read().logs.after(task.id, attempt, after, q.stream, PAGE);
      for (const p of page) out.send(p.stream, p.data, p.id);
      await out.flushed();
      if (page.length > 0) {
        after = page[page.length - 1].id;
        sent = true;
        if (page.length === PAGE) continue;
      }
      if (attemptEnded(task, attempt)) {
        // Pieces appended just before the end were read above (the report follows the last append).
        if (!sent) {
          // Nothing streamed: what its report carried, stream by stream (id 0: not a stored piece).
          for (const stream of q.stream ? [q.stream] : (['stdout', 'stderr'] as const)) {
            const r = reported(task, attempt, stream);
            if (r.text) out.send(stream, r.text, 0);
          }
        }
        out.send('end', { attempt, state: task.state });
        return;
      }
      if (this.waits.isClosing) return;
      out.keepAlive();
      await this.waits.nap(LongWaits.log(task.id), FOLLOW_RECHECK_MS);
      task = await this.task(taskId, namespace);
    }
  }

  private async task(id: string, namespace: string): Promise<TaskEntity> {
    const task = await this.db.read().tasks.get(id, namespace);
    if (!task) throw notFound('task', id);
    return task;
  }

  /** The attempt a read would show: 404 for an unknown task or an attempt it has not reached. */
  async attemptOf(taskId: string, asked: number | undefined, namespace: string): Promise<number> {
    return this.attemptIn(await this.task(taskId, namespace), asked);
  }

  private attemptIn(task: TaskEntity, asked: number | undefined): number {
    if (asked === undefined) return Math.max(1, task.attempt);
    if (asked > Math.max(1, task.attempt))
      throw notFound('attempt', `${asked} of task ${task.id} (it is at attempt ${task.attempt})`);
    return asked;
  }
}

/** Whether `attempt` of the task can write no more: the task moved to a later attempt, or finished. */
function attemptEnded(task: TaskEntity, attempt: number): boolean {
  return task.attempt > attempt || isTerminalTask(task.state);
}

/**
 * What the attempt's report carried (the last 64 KiB per stream), when it was the last
 * attempt reported: the task's current one once it is finished, else the one before (a
 * failed attempt's report stays on the task while the next attempt waits or runs).
 */
function reported(
  task: TaskEntity,
  attempt: number,
  stream: LogStreamName | undefined,
): { text: string; truncated: boolean } {
  const lastReported = isTerminalTask(task.state) ? task.attempt : task.attempt - 1;
  if (attempt !== lastReported) return { text: '', truncated: false };
  const parts = stream ? [task[stream]] : [task.stdout, task.stderr];
  return { text: parts.filter((p): p is string => !!p).join(''), truncated: false };
}
