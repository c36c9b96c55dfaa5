import { TagflowApiError, TagflowNetworkError } from './errors.js';
import { readEvents, type ServerEvent } from './event-stream.js';
import { describeNetworkError, wasNotSent } from './fetch-failure.js';
import { backoffDelay, DEFAULT_BACKOFF, isRetryable, type BackoffOptions } from './retry-policy.js';
import { sleep } from './sleep.js';
import type { ErrorBody } from './types.js';

/** What the client's calls need of `fetch` (event streams always use the global `fetch`). */
export type Send = (
  url: URL,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<{ ok: boolean; status: number; statusText: string; text(): Promise<string> }>;

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
  /**
   * Sends a call; default the global `fetch`. It fails the way `fetch` does (a TypeError whose
   * `cause` has the system error's `code`; the signal's reason when aborted). A Node process
   * that sends many small calls can pass the worker's `keepAliveSend`, about a fifth of
   * `fetch`'s CPU a call.
   */
  send?: Send;
}

export interface CallOptions {
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

/** How much longer than its own wait a long-poll may take before the client gives up on it. */
const LONG_POLL_MARGIN_MS = 10_000;

/**
 * HTTP to the API for TagflowClient: one call with its headers, time limit and error
 * mapping, sent again on a retryable failure (see isRetryable) with capped, jittered
 * backoff; and event streams opened with the same credentials.
 */
export class Transport {
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly retry: BackoffOptions;
  private readonly send: Send;

  constructor(private readonly options: ClientOptions) {
    this.send = options.send ?? ((url, init) => fetch(url, init));
    this.base = options.url.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_BACKOFF, ...options.retry };
  }

  events(
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

  async call<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
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
    const limit = callLimit(this.timeoutMs + (opts.waitMs ? opts.waitMs + LONG_POLL_MARGIN_MS : 0), opts.signal);
    let text: string;
    let res: Awaited<ReturnType<Send>>;
    try {
      try {
        res = await this.send(url, {
          method,
          headers,
          body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
          signal: limit.signal,
        });
      } catch (e) {
        throw new TagflowNetworkError(describeNetworkError(e), method, path, wasNotSent(e), e);
      }
      text = await res.text().catch(() => '');
    } finally {
      limit.end();
    }
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

/** The longest delay a timer takes (about 24.8 days); a longer limit (Infinity) is that long. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A call's signal: aborted with a TimeoutError after `ms` (as `AbortSignal.timeout`), or with
 * `outer`'s reason when the caller aborts. `end` clears both once the answer is read, so a
 * process making many calls keeps no timer or listener per finished call. (`AbortSignal.timeout`'s
 * timer stays pending for its whole delay, and with `AbortSignal.any` a call cost several times
 * as much.)
 */
function callLimit(ms: number, outer?: AbortSignal): { signal: AbortSignal; end: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
    Math.min(ms, MAX_TIMER_MS),
  );
  // Node: the limit alone keeps no process alive (as AbortSignal.timeout's); a browser's timer is a number.
  (timer as { unref?: () => void }).unref?.();
  const follow = () => controller.abort(outer!.reason);
  if (outer?.aborted) follow();
  else outer?.addEventListener('abort', follow, { once: true });
  return {
    signal: controller.signal,
    end: () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', follow);
    },
  };
}
