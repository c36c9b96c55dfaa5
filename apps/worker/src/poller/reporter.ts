import { LIMITS } from '@tagflow/domain';
import {
  backoffDelay,
  TagflowApiError,
  type BatchReport,
  type ReportResult,
  type TagflowClient,
} from '@tagflow/client';

/** Below the API's default 1 MiB body limit, with room for the poll and the envelope. */
const BATCH_MAX_BYTES = 768 * 1024;

interface Pending {
  report: BatchReport;
  bytes: number;
  done: (r: ReportResult) => void;
}

export type ReportLog = (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>) => void;

/**
 * Finished tasks' reports on their way to the API (`POST /v1/tasks/report`).
 *
 * Reports wait in an outbox. The agent's poll loop carries them with its next poll
 * (`take()`), which is the common case: a task ends, its slot frees, the next poll goes
 * out with its report. When the poll loop is parked in a long-poll (or the worker is
 * stopping), `flush()` sends them at once in a request of their own.
 *
 * A report is settled when the API judged it: 200, or refused for good (404/409: the
 * task was taken back; 422: its output is too large, then a failure saying so is sent
 * in its place). A request that fails as a whole is sent again with backoff; that is
 * safe because a report already applied is answered the same way again.
 */
export class Reporter {
  private readonly outbox: Pending[] = [];
  private flushing = false;
  private flushQueued = false;
  /** The request a flush has out now, if any. */
  private sending: Promise<unknown> | null = null;

  constructor(
    private readonly client: TagflowClient,
    private readonly log: ReportLog,
    /** True while the poll loop waits to send its next request (it will carry the reports): it is woken instead. */
    private readonly wakeCarrier: () => boolean,
  ) {}

  get pending(): number {
    return this.outbox.length;
  }

  /** Queues a report; resolves once the API judged it. */
  submit(report: BatchReport): Promise<ReportResult> {
    return new Promise((done) => {
      this.outbox.push({ report, bytes: Buffer.byteLength(JSON.stringify(report)), done });
      if (!this.wakeCarrier()) this.scheduleFlush();
    });
  }

  /**
   * Resolves once the report request a flush has out now (if any) is answered, whatever the
   * answer. The poll loop waits for it before asking for more work: otherwise the API could
   * lease the next task before it heard that the last one ended, and hold more of this
   * worker's tasks RUNNING than its concurrency.
   */
  async sent(): Promise<void> {
    await this.sending?.catch(() => undefined);
  }

  /** Reports for the next request: up to 100 and BATCH_MAX_BYTES (at least one). */
  take(): Pending[] {
    let bytes = 0;
    let n = 0;
    while (
      n < this.outbox.length &&
      n < LIMITS.reportsPerRequest &&
      (n === 0 || bytes + this.outbox[n].bytes <= BATCH_MAX_BYTES)
    )
      bytes += this.outbox[n++].bytes;
    return this.outbox.splice(0, n);
  }

  /** A request carrying `batch` failed as a whole: its reports go back to the front, sent again by a flush. */
  giveBack(batch: Pending[]): void {
    if (batch.length === 0) return;
    this.outbox.unshift(...batch);
    this.scheduleFlush();
  }

  /** Applies the API's answer to each report of `batch`. */
  settle(batch: Pending[], results: readonly ReportResult[]): void {
    const byTask = new Map(results.map((r) => [r.task_id, r]));
    for (const p of batch) {
      const r = byTask.get(p.report.task_id) ?? {
        task_id: p.report.task_id,
        status: 500,
        message: 'the API did not answer this report',
      };
      if (r.status === 422 && !(p.report.status === 'fail' && p.report.error.code === 'OUTPUT_TOO_LARGE')) {
        // Output too large: report that instead, so the task does not hang until its lease ends.
        const { output: _output, ...rest } = p.report;
        const failure: BatchReport = {
          ...rest,
          status: 'fail',
          error: {
            message: `the task's output was refused: ${r.message ?? 'too large'}`,
            code: 'OUTPUT_TOO_LARGE',
            retryable: false,
          },
        };
        this.outbox.unshift({ report: failure, bytes: Buffer.byteLength(JSON.stringify(failure)), done: p.done });
        this.scheduleFlush();
        continue;
      }
      if (r.status === 500) {
        this.giveBack([p]);
        continue;
      }
      if (r.status !== 200)
        this.log('warn', 'report refused: the task was taken back', {
          task_id: p.report.task_id,
          status: r.status,
          message: r.message,
        });
      p.done(r);
    }
  }

  /** Sends the outbox in requests of its own until it is empty (one flush at a time). */
  async flush(): Promise<void> {
    this.flushQueued = false;
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (let failures = 0; this.outbox.length > 0;) {
        const batch = this.take();
        try {
          const request = this.client.report(batch.map((p) => p.report));
          this.sending = request;
          const { results } = await request.finally(() => (this.sending = null));
          this.settle(batch, results);
          failures = 0;
        } catch (e) {
          if (e instanceof TagflowApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
            // The request as a whole was refused (too large, or one report malformed): each alone.
            await this.oneByOne(batch);
            continue;
          }
          this.outbox.unshift(...batch);
          const wait = backoffDelay(Math.min(failures++, 5), { baseMs: 250, maxMs: 5000 });
          this.log('warn', 'reports not sent; retrying', {
            reports: batch.length,
            error: (e as Error).message,
            retry_in_ms: wait,
          });
          await new Promise((r) => setTimeout(r, wait));
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    // Reports that end in the same turn go in one request.
    setImmediate(() => void this.flush());
  }

  private async oneByOne(batch: Pending[]): Promise<void> {
    for (const p of batch) {
      try {
        const { results } = await this.client.report([p.report]);
        this.settle([p], results);
      } catch (e) {
        if (e instanceof TagflowApiError && e.status === 413) {
          this.settle([p], [{ task_id: p.report.task_id, status: 422, message: e.message }]); // too large even alone
        } else if (e instanceof TagflowApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
          this.log('error', 'report refused by the API; the task will be taken back when its lease ends', {
            task_id: p.report.task_id,
            status: e.status,
            message: e.message,
          });
          p.done({ task_id: p.report.task_id, status: e.status, message: e.message });
        } else {
          this.giveBack([p]);
        }
      }
    }
  }
}
