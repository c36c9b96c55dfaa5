import { TagflowApiError } from './errors.js';
import type { BackoffOptions } from './retry-policy.js';
import { Transport, type CallOptions, type ClientOptions } from './transport.js';
import type {
  ApiKey,
  BatchReport,
  ConcurrencyLimit,
  DataEntry,
  Schedule,
  ScheduleSpec,
  KeyRole,
  LogChunk,
  LogEnd,
  LogStream,
  WorkflowStreamEvent,
  Failure,
  HeartbeatAnswer,
  JsonObject,
  LeaseBeat,
  LeaseBeatResult,
  LeasedTask,
  Page,
  PollRequest,
  Report,
  ReportResult,
  Task,
  TaskEvent,
  TaskSpec,
  TaskState,
  WorkerInfo,
  Workflow,
  WorkflowSpec,
  WorkflowState,
} from './types.js';

export type { ClientOptions, Send } from './transport.js';

/**
 * A creating call: one Idempotency-Key for it and all its retries, so a retry after a
 * lost answer gets the first answer instead of making a second resource; hence safe to retry.
 */
function creating(): Pick<CallOptions, 'idempotencyKey' | 'idempotent'> {
  return { idempotencyKey: globalThis.crypto.randomUUID(), idempotent: true };
}

/** Every item of a paged listing (`listWorkers`, `listSchedules`, ...), 500 a page, up to `max`. */
export async function allPages<T>(
  page: (q: { limit: number; cursor?: string }) => Promise<Page<T>>,
  max = Infinity,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const p = await page({ limit: Math.min(500, max - items.length), cursor });
    items.push(...p.items);
    cursor = p.next_cursor ?? undefined;
  } while (cursor && items.length < max);
  return items;
}

/**
 * The typed client for Tagflow's /v1 API, used by the worker agent and by engines that
 * hand tasks over. Errors are TagflowApiError (with status and message) or
 * TagflowNetworkError; network errors and 503 are retried with capped, jittered backoff.
 */
export class TagflowClient {
  private readonly http: Transport;

  constructor(options: ClientOptions) {
    this.http = new Transport(options);
  }

  // ---- workflows ----
  createWorkflow(spec: WorkflowSpec): Promise<Workflow> {
    return this.http.call('POST', '/v1/workflows', { body: spec, ...creating() });
  }
  getWorkflow(id: string): Promise<Workflow> {
    return this.http.call('GET', `/v1/workflows/${enc(id)}`);
  }
  listWorkflows(
    q: { state?: WorkflowState; tag?: string; name?: string; limit?: number; cursor?: string } = {},
  ): Promise<Page<Workflow>> {
    return this.http.call('GET', '/v1/workflows', { query: q });
  }
  deleteWorkflow(id: string): Promise<void> {
    return this.http.call('DELETE', `/v1/workflows/${enc(id)}`, { idempotent: true });
  }
  sealWorkflow(id: string): Promise<Workflow> {
    return this.http.call('POST', `/v1/workflows/${enc(id)}/seal`, { idempotent: true });
  }
  cancelWorkflow(id: string): Promise<Workflow> {
    return this.http.call('POST', `/v1/workflows/${enc(id)}/cancel`, { idempotent: true });
  }
  pauseWorkflow(id: string): Promise<Workflow> {
    return this.http.call('POST', `/v1/workflows/${enc(id)}/pause`, { idempotent: true });
  }
  resumeWorkflow(id: string): Promise<Workflow> {
    return this.http.call('POST', `/v1/workflows/${enc(id)}/resume`, { idempotent: true });
  }

  // ---- tasks ----
  addTask(workflowId: string, spec: TaskSpec): Promise<Task> {
    return this.http.call('POST', `/v1/workflows/${enc(workflowId)}/tasks`, { body: spec });
  }
  async addTasks(workflowId: string, specs: TaskSpec[]): Promise<Task[]> {
    return (
      await this.http.call<{ tasks: Task[] }>('POST', `/v1/workflows/${enc(workflowId)}/tasks`, {
        body: { tasks: specs },
        ...creating(),
      })
    ).tasks;
  }
  listTasks(
    workflowId: string,
    q: { state?: TaskState; tag?: string; limit?: number; cursor?: string } = {},
  ): Promise<Page<Task>> {
    return this.http.call('GET', `/v1/workflows/${enc(workflowId)}/tasks`, { query: q });
  }
  getTaskInWorkflow(workflowId: string, idOrName: string): Promise<Task> {
    return this.http.call('GET', `/v1/workflows/${enc(workflowId)}/tasks/${enc(idOrName)}`);
  }
  /** With waitS, long-polls until the task is finished (or the wait ends). */
  getTask(id: string, waitS?: number): Promise<Task> {
    return this.http.call('GET', `/v1/tasks/${enc(id)}`, { query: { wait_s: waitS }, waitMs: (waitS ?? 0) * 1000 });
  }
  taskEvents(id: string): Promise<TaskEvent[]> {
    return this.http.call('GET', `/v1/tasks/${enc(id)}/events`);
  }
  /** An attempt's output as kept by the API (the last 1 MiB per stream); default the latest attempt, both streams interleaved. */
  async taskLogs(id: string, q: { attempt?: number; stream?: LogStream } = {}): Promise<string> {
    return this.http.call<string>('GET', `/v1/tasks/${enc(id)}/logs`, { query: q, accept: 'text/plain' });
  }
  /**
   * Follows an attempt's output as it is written, until the attempt ends (then one `end`
   * item with the task's state). Resumes after `after` (a chunk's `seq`) when given.
   */
  async *followTaskLogs(
    id: string,
    q: { attempt?: number; stream?: LogStream; after?: number } = {},
    signal?: AbortSignal,
  ): AsyncGenerator<LogChunk | LogEnd> {
    const { after, ...query } = q;
    for await (const e of this.http.events(
      `/v1/tasks/${enc(id)}/logs`,
      { ...query, follow: 1 },
      after === undefined ? undefined : String(after),
      signal,
    )) {
      if (e.event === 'end') yield { type: 'end', ...(JSON.parse(e.data) as Omit<LogEnd, 'type'>) };
      else if (e.event === 'stdout' || e.event === 'stderr')
        yield { type: 'chunk', stream: e.event, seq: Number(e.id ?? 0), text: JSON.parse(e.data) as string };
    }
  }
  /** A workflow's history so far: its own and its tasks' transitions, oldest first (`after`: a previous `id`). */
  workflowEvents(
    id: string,
    q: { after?: string; limit?: number } = {},
  ): Promise<{ items: WorkflowStreamEvent[]; next: string | null }> {
    return this.http.call('GET', `/v1/workflows/${enc(id)}/events`, { query: q });
  }
  /** Every transition of a workflow and its tasks, from the start (or after `after`), as it happens; ends when `signal` aborts. */
  async *followWorkflowEvents(id: string, after?: string, signal?: AbortSignal): AsyncGenerator<WorkflowStreamEvent> {
    for await (const e of this.http.events(`/v1/workflows/${enc(id)}/events`, { follow: 1 }, after, signal)) {
      if (e.event === 'transition') yield JSON.parse(e.data) as WorkflowStreamEvent;
    }
  }
  patchTask(id: string, patch: Omit<Partial<TaskSpec>, 'name'>): Promise<Task> {
    return this.http.call('PATCH', `/v1/tasks/${enc(id)}`, { body: patch, idempotent: true });
  }
  deleteTask(id: string): Promise<void> {
    return this.http.call('DELETE', `/v1/tasks/${enc(id)}`, { idempotent: true });
  }
  cancelTask(id: string): Promise<Task> {
    return this.http.call('POST', `/v1/tasks/${enc(id)}/cancel`, { idempotent: true });
  }
  rerunTask(id: string): Promise<Task> {
    return this.http.call('POST', `/v1/tasks/${enc(id)}/rerun`);
  }
  /** The single-task shortcut: a sealed one-task workflow. */
  submitTask(spec: TaskSpec & { workflow_name?: string }): Promise<Task> {
    return this.http.call('POST', '/v1/tasks', { body: spec, ...creating() });
  }
  /** Hands one task over and waits for its result, in as many long-polls as it takes. */
  async runTask(
    spec: TaskSpec & { workflow_name?: string },
    opts: { timeoutS?: number; signal?: AbortSignal } = {},
  ): Promise<Task> {
    const task = await this.submitTask(spec);
    const deadline = Date.now() + (opts.timeoutS ?? Infinity) * 1000;
    let current = task;
    while (!isTerminal(current.state)) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      const left = (deadline - Date.now()) / 1000;
      if (left <= 0) return current;
      current = await this.getTask(task.id, Math.min(60, Math.max(1, Math.floor(left))));
    }
    return current;
  }

  // ---- the data space ----
  putData(workflowId: string, key: string, value: unknown): Promise<DataEntry> {
    return this.http.call('PUT', `/v1/workflows/${enc(workflowId)}/data/${enc(key)}`, {
      body: { value },
      idempotent: true,
    });
  }
  /** The entry, or null when it is not written within waitS (a blocking read). */
  async getData(workflowId: string, key: string, waitS?: number): Promise<DataEntry | null> {
    try {
      return await this.http.call<DataEntry>('GET', `/v1/workflows/${enc(workflowId)}/data/${enc(key)}`, {
        query: { wait_s: waitS },
        waitMs: (waitS ?? 0) * 1000,
      });
    } catch (e) {
      if (
        e instanceof TagflowApiError &&
        (e.code === 'DATA_PENDING' || (e.body as { pending?: boolean } | null)?.pending)
      )
        return null;
      throw e;
    }
  }
  listData(workflowId: string): Promise<{ items: Omit<DataEntry, 'value'>[] }> {
    return this.http.call('GET', `/v1/workflows/${enc(workflowId)}/data`);
  }

  // ---- workers ----
  registerWorker(w: { name: string; tags?: string[]; hostname?: string; version?: string }): Promise<WorkerInfo> {
    return this.http.call('POST', '/v1/workers', { body: w, ...creating() });
  }
  listWorkers(q: { limit?: number; cursor?: string } = {}): Promise<Page<WorkerInfo>> {
    return this.http.call('GET', '/v1/workers', { query: q });
  }
  getWorker(id: string): Promise<WorkerInfo> {
    return this.http.call('GET', `/v1/workers/${enc(id)}`);
  }

  // ---- concurrency limits (namespace-wide) ----
  listLimits(): Promise<{ items: ConcurrencyLimit[] }> {
    return this.http.call('GET', '/v1/limits');
  }
  getLimit(tag: string): Promise<ConcurrencyLimit> {
    return this.http.call('GET', `/v1/limits/${enc(tag)}`);
  }
  /** Sets the limit on a tag (PUT: safe to send again). Lowering it never stops running tasks. */
  putLimit(tag: string, maxRunning: number): Promise<ConcurrencyLimit> {
    return this.http.call('PUT', `/v1/limits/${enc(tag)}`, { body: { max_running: maxRunning }, idempotent: true });
  }
  deleteLimit(tag: string): Promise<void> {
    return this.http.call('DELETE', `/v1/limits/${enc(tag)}`, { idempotent: true });
  }

  // ---- schedules ----
  createSchedule(spec: ScheduleSpec): Promise<Schedule> {
    return this.http.call('POST', '/v1/schedules', { body: spec, ...creating() });
  }
  listSchedules(q: { limit?: number; cursor?: string } = {}): Promise<Page<Schedule>> {
    return this.http.call('GET', '/v1/schedules', { query: q });
  }
  getSchedule(id: string): Promise<Schedule> {
    return this.http.call('GET', `/v1/schedules/${enc(id)}`);
  }
  deleteSchedule(id: string): Promise<void> {
    return this.http.call('DELETE', `/v1/schedules/${enc(id)}`, { idempotent: true });
  }
  pauseSchedule(id: string): Promise<Schedule> {
    return this.http.call('POST', `/v1/schedules/${enc(id)}/pause`, { idempotent: true });
  }
  resumeSchedule(id: string): Promise<Schedule> {
    return this.http.call('POST', `/v1/schedules/${enc(id)}/resume`, { idempotent: true });
  }
  /** Runs the schedule once now; resolves to the workflow it created. */
  triggerSchedule(id: string): Promise<Workflow> {
    return this.http.call('POST', `/v1/schedules/${enc(id)}/trigger`, { ...creating() });
  }

  // ---- keys (admin) ----
  /**
   * The answer carries the token, once. Sent once (not retried after it left: a second key
   * would be made; the API keeps no answer to replay, as that would store the token).
   */
  createKey(k: {
    name: string;
    role: KeyRole;
    namespace?: string;
    tags?: string[];
    expires_at?: string;
  }): Promise<ApiKey & { token: string }> {
    return this.http.call('POST', '/v1/keys', { body: k, idempotent: false });
  }
  listKeys(q: { limit?: number; cursor?: string } = {}): Promise<Page<ApiKey>> {
    return this.http.call('GET', '/v1/keys', { query: q });
  }
  revokeKey(id: string): Promise<void> {
    return this.http.call('DELETE', `/v1/keys/${enc(id)}`, { idempotent: true });
  }

  // ---- the worker protocol ----
  async poll(req: PollRequest, signal?: AbortSignal): Promise<LeasedTask[]> {
    const body = await this.http.call<{ tasks: LeasedTask[] }>('POST', '/v1/tasks/poll', {
      body: req,
      waitMs: (req.wait_s ?? 30) * 1000,
      idempotent: false,
      signal,
      retry: { attempts: 1 },
    });
    return body.tasks;
  }
  /** Extends every lease a worker holds in one request; each lease answered alone. */
  async heartbeatWorker(workerId: string, leases: LeaseBeat[]): Promise<LeaseBeatResult[]> {
    const body = await this.http.call<{ leases: LeaseBeatResult[] }>('POST', `/v1/workers/${enc(workerId)}/heartbeat`, {
      body: { leases },
      idempotent: true,
      retry: { attempts: 2 },
    });
    return body.leases;
  }
  heartbeat(taskId: string, leaseToken: string, progress?: unknown): Promise<HeartbeatAnswer> {
    return this.http.call('POST', `/v1/tasks/${enc(taskId)}/heartbeat`, {
      body: { lease_token: leaseToken, progress },
      idempotent: true,
      retry: { attempts: 2 },
    });
  }
  /**
   * Up to 100 reports and, optionally, the next poll in one request. Each report is judged
   * alone (see `ReportResult`); the poll is answered after them. Without a poll the call is
   * sent again on a network error or 503 (a report already applied is answered the same);
   * with one it is sent once (a lost answer would lose its leases until they expire), and
   * the caller sends its reports again.
   */
  report(
    reports: BatchReport[],
    poll?: PollRequest,
    signal?: AbortSignal,
  ): Promise<{ results: ReportResult[]; tasks: LeasedTask[] }> {
    return this.http.call('POST', '/v1/tasks/report', {
      body: { reports, ...(poll ? { poll } : {}) },
      ...(poll
        ? { waitMs: (poll.wait_s ?? 30) * 1000, idempotent: false, retry: { attempts: 1 } }
        : { idempotent: true }),
      signal,
    });
  }
  /** Appends live output of a running attempt (sent once: a retry could append it twice). */
  appendLog(taskId: string, leaseToken: string, stream: LogStream, data: string): Promise<{ seq: number }> {
    return this.http.call('POST', `/v1/tasks/${enc(taskId)}/logs`, {
      body: { lease_token: leaseToken, stream, data },
      idempotent: false,
      retry: { attempts: 1 },
    });
  }
  complete(
    taskId: string,
    leaseToken: string,
    output?: JsonObject,
    report: Report = {},
    retry?: Partial<BackoffOptions>,
  ): Promise<Task> {
    return this.http.call('POST', `/v1/tasks/${enc(taskId)}/complete`, {
      body: { lease_token: leaseToken, output, ...report },
      idempotent: true,
      retry,
    });
  }
  fail(
    taskId: string,
    leaseToken: string,
    error: Failure,
    report: Report = {},
    retry?: Partial<BackoffOptions>,
  ): Promise<Task> {
    return this.http.call('POST', `/v1/tasks/${enc(taskId)}/fail`, {
      body: { lease_token: leaseToken, error, ...report },
      idempotent: true,
      retry,
    });
  }

  async health(): Promise<{ status: string; database: string; redis: string }> {
    return this.http.call('GET', '/health', { retry: { attempts: 1 } });
  }
}

export function isTerminal(state: TaskState): boolean {
  return state === 'SUCCESS' || state === 'ERROR' || state === 'CANCELLED' || state === 'SKIPPED';
}

function enc(s: string): string {
  return encodeURIComponent(s);
}
