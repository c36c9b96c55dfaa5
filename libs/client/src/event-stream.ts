import { TagflowApiError, TagflowNetworkError } from './errors.js';
import { describeNetworkError, wasNotSent } from './fetch-failure.js';
import { backoffDelay, DEFAULT_BACKOFF } from './retry-policy.js';
import { sleep } from './sleep.js';
import type { ErrorBody } from './types.js';

/** One event of a `text/event-stream` answer. */
export interface ServerEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * Reads a `text/event-stream` answer. A dropped connection is opened again (with
 * `Last-Event-ID`) after a short wait; the stream ends when the server closes it after its
 * last event, or when `signal` aborts.
 */
export async function* readEvents(
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
