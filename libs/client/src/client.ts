import { TagflowApiError, TagflowNetworkError } from './errors.js';
import { backoffDelay, DEFAULT_BACKOFF, isRetryable, type BackoffOptions } from './retry-policy.js';
import type {
  ApiKey,
  BatchReport,
  ConcurrencyLimit,
  DataEntry,
  Schedule,
  ScheduleSpec,
  ErrorBody,
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

export interface ClientOptions {
  /** Base URL of the API, e.g. http://127.0.0.1:8080 */
  url: string;
  /** Sent as `Authorization: Bearer <token>`; never logged. */
  token?: string;
  /**
   * Sent as `Tagflow-Namespace`: the namespace an all-namespaces admin key acts in (any
   * other key acts in its own; naming another is 403).
   */
  namespace?: string;
  /** Time limit of a call that does not long-poll. */
  timeoutMs?: number;
  retry?: Partial<BackoffOptions>;
  /** Told about each retry (for logs); never sees the token. */
  onRetry?: (info: { method: string; path: string; attempt: number; delayMs: number; error: Error }) => void;
}

interface CallOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  idempotent?: boolean;
  /** Extra time on top of timeoutMs, for long-polls. */
  waitMs?: number;
  retry?: Partial<BackoffOptions>;
  signal?: AbortSignal;
  /** Sent as `Idempotency-Key`: the same on every retry of this call. */
  idempotencyKey?: string;
  /** `text/plain`: the answer's text is returned as it is. */
  accept?: string;
}

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

/** How much longer than its own wait a long-poll may take before the client gives up on it. */
const LONG_POLL_MARGIN_MS = 10_000;

/**
 * The typed client for Tagflow's /v1 API, used by the worker agent and by engines that
 * hand tasks over. Errors are TagflowApiError (with status and message) or
 * TagflowNetworkError; network errors and 503 are retried with capped, jittered backoff.
 */
export class TagflowClient {
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly retry: BackoffOptions;

  constructor(private readonly options: ClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_BACKOFF, ...options.retry };
  }

  // ---- workflows ----
  createWorkflow(spec: WorkflowSpec): Promise<Workflow> {
    return this.call('POST', '/v1/workflows', { body: spec, ...creating() });
  }
  getWorkflow(id: string): Promise<Workflow> {
    return this.call('GET', `/v1/workflows/${enc(id)}`);
  }
  listWorkflows(
    q: { state?: WorkflowState; tag?: string; name?: string; limit?: number; cursor?: string } = {},
  ): Promise<Page<Workflow>> {
    return this.call('GET', '/v1/workflows', { query: q });
  }
  deleteWorkflow(id: string): Promise<void> {
    return this.call('DELETE', `/v1/workflows/${enc(id)}`, { idempotent: true });
  }
  sealWorkflow(id: string): Promise<Workflow> {
    return this.call('POST', `/v1/workflows/${enc(id)}/seal`, { idempotent: true });
  }
  cancelWorkflow(id: string): Promise<Workflow> {
    return this.call('POST', `/v1/workflows/${enc(id)}/cancel`, { idempotent: true });
  }
  pauseWorkflow(id: string): Promise<Workflow> {
    return this.call('POST', `/v1/workflows/${enc(id)}/pause`, { idempotent: true });
  }
  resumeWorkflow(id: string): Promise<Workflow> {
    return this.call('POST', `/v1/workflows/${enc(id)}/resume`, { idempotent: true });
  }

  // ---- tasks ----
  addTask(workflowId: string, spec: TaskSpec): Promise<Task> {
    return this.call('POST', `/v1/workflows/${enc(workflowId)}/tasks`, { body: spec });
  }
  async addTasks(workflowId: string, specs: TaskSpec[]): Promise<Task[]> {
    return (
      await this.call<{ tasks: Task[] }>('POST', `/v1/workflows/${enc(workflowId)}/tasks`, {
        body: { tasks: specs },
        ...creating(),
      })
    ).tasks;
  }
  listTasks(
    workflowId: string,
    q: { state?: TaskState; tag?: string; limit?: number; cursor?: string } = {},
  ): Promise<Page<Task>> {
    return this.call('GET', `/v1/workflows/${enc(workflowId)}/tasks`, { query: q });
  }
  getTaskInWorkflow(workflowId: string, idOrName: string): Promise<Task> {
    return this.call('GET', `/v1/workflows/${enc(workflowId)}/tasks/${enc(idOrName)}`);
  }
  /** With waitS, long-polls until the task is finished (or the wait ends). */
  getTask(id: string, waitS?: number): Promise<Task> {
    return this.call('GET', `/v1/tasks/${enc(id)}`, { query: { wait_s: waitS }, waitMs: (waitS ?? 0) * 1000 });
  }
  taskEvents(id: string): Promise<TaskEvent[]> {
    return this.call('GET', `/v1/tasks/${enc(id)}/events`);
  }
  /** An attempt's output as kept by the API (the last 1 MiB per stream); default the latest attempt, both streams interleaved. */
  async taskLogs(id: string, q: { attempt?: number; stream?: LogStream } = {}): Promise<string> {
    return this.call<string>('GET', `/v1/tasks/${enc(id)}/logs`, { query: q, accept: 'text/plain' });
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
    for await (const e of this.events(
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
    return this.call('GET', `/v1/workflows/${enc(id)}/events`, { query: q });
  }
  /** Every transition of a workflow and its tasks, from the start (or after `after`), as it happens; ends when `signal` aborts. */
  async *followWorkflowEvents(id: string, after?: string, signal?: AbortSignal): AsyncGenerator<WorkflowStreamEvent> {
    for await (const e of this.events(`/v1/workflows/${enc(id)}/events`, { follow: 1 }, after, signal)) {
      if (e.event === 'transition') yield JSON.parse(e.data) as WorkflowStreamEvent;
    }
  }
  patchTask(id: string, patch: Omit<Partial<TaskSpec>, 'name'>): Promise<Task> {
    return this.call('PATCH', `/v1/tasks/${enc(id)}`, { body: patch, idempotent: true });
  }
  deleteTask(id: string): Promise<void> {
    return this.call('DELETE', `/v1/tasks/${enc(id)}`, { idempotent: true });
  }
  cancelTask(id: string): Promise<Task> {
    return this.call('POST', `/v1/tasks/${enc(id)}/cancel`, { idempotent: true });
  }
  rerunTask(id: string): Promise<Task> {
    return this.call('POST', `/v1/tasks/${enc(id)}/rerun`);
  }
  /** The single-task shortcut: a sealed one-task workflow. */
  submitTask(spec: TaskSpec & { workflow_name?: string }): Promise<Task> {
    return this.call('POST', '/v1/tasks', { body: spec, ...creating() });
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
    return this.call('PUT', `/v1/workflows/${enc(workflowId)}/data/${enc(key)}`, { body: { value }, idempotent: true });
  }
  /** The entry, or null when it is not written within waitS (a blocking read). */
  async getData(workflowId: string, key: string, waitS?: number): Promise<DataEntry | null> {
    try {
      return await this.call<DataEntry>('GET', `/v1/workflows/${enc(workflowId)}/data/${enc(key)}`, {
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
    return this.call('GET', `/v1/workflows/${enc(workflowId)}/data`);
  }

  // ---- workers ----
  registerWorker(w: { name: string; tags?: string[]; hostname?: string; version?: string }): Promise<WorkerInfo> {
    return this.call('POST', '/v1/workers', { body: w, ...creating() });
  }
  listWorkers(q: { limit?: number; cursor?: string } = {}): Promise<Page<WorkerInfo>> {
    return this.call('GET', '/v1/workers', { query: q });
  }
  getWorker(id: string): Promise<WorkerInfo> {
    return this.call('GET', `/v1/workers/${enc(id)}`);
  }

  // ---- concurrency limits (namespace-wide) ----
  listLimits(): Promise<{ items: ConcurrencyLimit[] }> {
    return this.call('GET', '/v1/limits');
  }
  getLimit(tag: string): Promise<ConcurrencyLimit> {
    return this.call('GET', `/v1/limits/${enc(tag)}`);
  }
  /** Sets the limit on a tag (PUT: safe to send again). Lowering it never stops running tasks. */
  putLimit(tag: string, maxRunning: number): Promise<ConcurrencyLimit> {
    return this.call('PUT', `/v1/limits/${enc(tag)}`, { body: { max_running: maxRunning }, idempotent: true });
  }
  deleteLimit(tag: string): Promise<void> {
    return this.call('DELETE', `/v1/limits/${enc(tag)}`, { idempotent: true });
  }

  // ---- schedules ----
  createSchedule(spec: ScheduleSpec): Promise<Schedule> {
    return this.call('POST', '/v1/schedules', { body: spec, ...creating() });
  }
  listSchedules(q: { limit?: number; cursor?: string } = {}): Promise<Page<Schedule>> {
    return this.call('GET', '/v1/schedules', { query: q });
  }
  getSchedule(id: string): Promise<Schedule> {
    return this.call('GET', `/v1/schedules/${enc(id)}`);
  }
  deleteSchedule(id: string): Promise<void> {
    return this.call('DELETE', `/v1/schedules/${enc(id)}`, { idempotent: true });
  }
  pauseSchedule(id: string): Promise<Schedule> {
    return this.call('POST', `/v1/schedules/${enc(id)}/pause`, { idempotent: true });
  }
  resumeSchedule(id: string): Promise<Schedule> {
    return this.call('POST', `/v1/schedules/${enc(id)}/resume`, { idempotent: true });
  }
  /** Runs the schedule once now; resolves to the workflow it created. */
  triggerSchedule(id: string): Promise<Workflow> {
    return this.call('POST', `/v1/schedules/${enc(id)}/trigger`, { ...creating() });
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
    return this.call('POST', '/v1/keys', { body: k, idempotent: false });
  }
  listKeys(q: { limit?: number; cursor?: string } = {}): Promise<Page<ApiKey>> {
    return this.call('GET', '/v1/keys', { query: q });
  }
  revokeKey(id: string): Promise<void> {
    return this.call('DELETE', `/v1/keys/${enc(id)}`, { idempotent: true });
  }

  // ---- the worker protocol ----
  async poll(req: PollRequest, signal?: AbortSignal): Promise<LeasedTask[]> {
    const body = await this.call<{ tasks: LeasedTask[] }>('POST', '/v1/tasks/poll', {
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
    const body = await this.call<{ leases: LeaseBeatResult[] }>('POST', `/v1/workers/${enc(workerId)}/heartbeat`, {
      body: { leases },
      idempotent: true,
      retry: { attempts: 2 },
    });
    return body.leases;
  }
  heartbeat(taskId: string, leaseToken: string, progress?: unknown): Promise<HeartbeatAnswer> {
    return this.call('POST', `/v1/tasks/${enc(taskId)}/heartbeat`, {
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
    return this.call('POST', '/v1/tasks/report', {
      body: { reports, ...(poll ? { poll } : {}) },
      ...(poll
        ? { waitMs: (poll.wait_s ?? 30) * 1000, idempotent: false, retry: { attempts: 1 } }
        : { idempotent: true }),
      signal,
    });
  }
  /** Appends live output of a running attempt (sent once: a retry could append it twice). */
  appendLog(taskId: string, leaseToken: string, stream: LogStream, data: string): Promise<{ seq: number }> {
    return this.call('POST', `/v1/tasks/${enc(taskId)}/logs`, {
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
    return this.call('POST', `/v1/tasks/${enc(taskId)}/complete`, {
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
    return this.call('POST', `/v1/tasks/${enc(taskId)}/fail`, {
      body: { lease_token: leaseToken, error, ...report },
      idempotent: true,
      retry,
    });
  }

  async health(): Promise<{ status: string; database: string; redis: string }> {
    return this.call('GET', '/health', { retry: { attempts: 1 } });
  }

  // ---- transport ----
  private events(
    path: string,
    query: Record<string, string | number | undefined>,
    after: string | undefined,
    signal?: AbortSignal,
  ): AsyncGenerator<ServerEvent> {
    const url = new URL(this.base + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const open = (lastId: string | undefined) => {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
      if (this.options.namespace) headers['tagflow-namespace'] = this.options.namespace;
      if (lastId !== undefined) headers['last-event-id'] = lastId;
      return fetch(url, { headers, signal });
    };
    return readEvents(open, after, signal);
  }

  private async call<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
    const retry = { ...this.retry, ...opts.retry };
    const idempotent = opts.idempotent ?? method === 'GET';
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once<T>(method, path, opts);
      } catch (e) {
        const error = e as Error;
        if (opts.signal?.aborted || attempt >= retry.attempts || !isRetryable(error, idempotent)) throw error;
        const delayMs = backoffDelay(attempt - 1, retry);
        this.options.onRetry?.({ method, path, attempt, delayMs, error });
        await sleep(delayMs, opts.signal);
      }
    }
  }

  private async once<T>(method: string, path: string, opts: CallOptions): Promise<T> {
    const url = new URL(this.base + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: opts.accept ?? 'application/json' };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    if (this.options.namespace) headers['tagflow-namespace'] = this.options.namespace;
    if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
    const timeout = AbortSignal.timeout(this.timeoutMs + (opts.waitMs ? opts.waitMs + LONG_POLL_MARGIN_MS : 0));
    const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal,
      });
    } catch (e) {
      throw new TagflowNetworkError(describeNetworkError(e), method, path, wasNotSent(e), e);
    }
    const text = await res.text().catch(() => '');
    if (res.ok && opts.accept === 'text/plain') return text as T;
    let body: unknown = undefined;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (!res.ok) {
      const err = (typeof body === 'object' && body !== null ? body : null) as Partial<ErrorBody> | null;
      throw new TagflowApiError(
        res.status,
        err?.message ?? (typeof body === 'string' ? body.slice(0, 200) : res.statusText),
        err,
        method,
        path,
      );
    }
    return body as T;
  }
}

/**
 * Reads a `text/event-stream` answer. A dropped connection is opened again (with
 * `Last-Event-ID`) after a short wait; the stream ends when the server closes it after its
 * last event, or when `signal` aborts.
 */
async function* readEvents(
  open: (lastId: string | undefined) => Promise<Response>,
  lastId: string | undefined,
  signal?: AbortSignal,
): AsyncGenerator<ServerEvent> {
  for (let failures = 0; !signal?.aborted;) {
    let res: Response;
    try {
      res = await open(lastId);
    } catch (e) {
      if (signal?.aborted) return;
      if (++failures > 5)
        throw new TagflowNetworkError(describeNetworkError(e), 'GET', 'event stream', wasNotSent(e), e);
      await sleep(backoffDelay(failures, DEFAULT_BACKOFF), signal);
      continue;
    }
    if (!res.ok || !res.body) {
      const text = await res.text().catch(() => '');
      let err: Partial<ErrorBody> | null = null;
      try {
        err = JSON.parse(text) as Partial<ErrorBody>;
      } catch {
        // not JSON
      }
      if (res.status === 503 && ++failures <= 5) {
        await sleep(backoffDelay(failures, DEFAULT_BACKOFF), signal);
        continue;
      }
      throw new TagflowApiError(res.status, err?.message ?? text.slice(0, 200), err, 'GET', 'event stream');
    }
    let ended = false;
    let received = 0;
    let buffer = '';
    let event: ServerEvent = { event: 'message', data: '' };
    const decoder = new TextDecoder();
    // A reader, not `for await` over the body: Safari's streams are not async iterable.
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).replace(/\r$/, '');
          buffer = buffer.slice(nl + 1);
          if (line === '') {
            if (event.data !== '' || event.event !== 'message') {
              if (event.event === 'error') {
                // The server stopped the stream: a client error is final, anything else is tried again.
                const told = JSON.parse(event.data || '{}') as { status?: number; message?: string };
                if ((told.status ?? 500) < 500)
                  throw new TagflowApiError(
                    told.status ?? 400,
                    told.message ?? 'the stream was refused',
                    null,
                    'GET',
                    'event stream',
                  );
              } else {
                if (event.id !== undefined && event.id !== '0') lastId = event.id;
                if (event.event === 'end') ended = true;
                received++;
                yield event;
              }
            }
            event = { event: 'message', data: '' };
          } else if (!line.startsWith(':')) {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'data') event.data = event.data === '' ? value : `${event.data}\n${value}`;
            else if (field === 'event') event.event = value;
            else if (field === 'id') event.id = value;
          }
        }
      }
    } catch (e) {
      // A refusal the server sent in the stream is final; a dropped connection is tried again.
      if (e instanceof TagflowApiError) throw e;
      if (signal?.aborted) return;
      // Counted from the last connection that brought something: a long stream may drop now and then.
      failures = received > 0 ? 1 : failures + 1;
      if (failures > 5) throw new TagflowNetworkError(describeNetworkError(e), 'GET', 'event stream', false, e);
      await sleep(backoffDelay(failures, DEFAULT_BACKOFF), signal);
      continue;
    } finally {
      // Frees the connection when the reader stops early (a `break` in the caller, an error).
      reader.cancel().catch(() => undefined);
    }
    if (ended) return;
    // Closed without its end: connect again, backing off when connections bring nothing.
    failures = received > 0 ? 0 : failures + 1;
    if (failures > 5)
      throw new TagflowNetworkError(
        'the event stream keeps closing without an answer',
        'GET',
        'event stream',
        false,
        null,
      );
    await sleep(backoffDelay(failures, DEFAULT_BACKOFF), signal);
  }
}

interface ServerEvent {
  id?: string;
  event: string;
  data: string;
}

export function isTerminal(state: TaskState): boolean {
  return state === 'SUCCESS' || state === 'ERROR' || state === 'CANCELLED' || state === 'SKIPPED';
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

function causeCode(e: unknown): string | undefined {
  const cause = (e as { cause?: { code?: string } } | null)?.cause;
  return cause?.code;
}

function wasNotSent(e: unknown): boolean {
  const code = causeCode(e);
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH';
}

function describeNetworkError(e: unknown): string {
  if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError'))
    return e.name === 'TimeoutError' ? 'no answer in time' : 'aborted';
  const code = causeCode(e);
  return code
    ? `cannot reach the API (${code})`
    : `cannot reach the API (${e instanceof Error ? e.message : String(e)})`;
}
