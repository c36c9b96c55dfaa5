import type { ServerResponse } from 'node:http';
import type { HttpReply, HttpRequest } from '../common/http.js';

/** Silence longer than this gets a comment line, so proxies and clients keep the stream open. */
const KEEP_ALIVE_MS = 15_000;

/**
 * A `text/event-stream` answer (server-sent events) written as things happen. Each event
 * is `id`, `event` and one `data` line (JSON, so a newline in the payload cannot end it).
 * The client going away is noticed (`closed`); the handler stops then.
 */
export class EventStream {
  private gone = false;
  private lastWrite = Date.now();

  /** `ends`: the caller's access ended (its key revoked or expired): the stream stops with an `error` event. */
  private readonly res: ServerResponse;

  constructor(
    reply: HttpReply,
    private readonly ends?: AbortSignal,
  ) {
    // Written here, not by the server: the answer is the stream's alone from now on.
    reply.hijack();
    this.res = reply.raw;
    this.res.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    this.res.write('retry: 2000\n\n');
    this.res.on('close', () => (this.gone = true));
  }

  get closed(): boolean {
    return this.gone || this.res.writableEnded || this.ends?.aborted === true;
  }

  send(event: string, data: unknown, id?: string | number): void {
    if (this.closed) return;
    this.res.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    this.lastWrite = Date.now();
  }

  /** Resolves once what was written has gone out (or the client left): a client that does not read holds its follower, not the API's memory. */
  async flushed(): Promise<void> {
    if (this.closed || !this.res.writableNeedDrain) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  keepAlive(): void {
    if (this.closed || Date.now() - this.lastWrite < KEEP_ALIVE_MS) return;
    this.res.write(': keep-alive\n\n');
    this.lastWrite = Date.now();
  }

  /** Ends the answer; an error after the headers went out is told as an `error` event. */
  end(error?: { status: number; code?: string; message: string }): void {
    if (this.ends?.aborted && !this.gone && !this.res.writableEnded) {
      const why = this.ends.reason as { code?: string; message: string };
      error = { status: 401, code: why.code, message: `${why.message}; the stream ended` };
      this.res.write(`event: error\ndata: ${JSON.stringify(error)}\n\n`);
    } else if (error) this.send('error', error);
    if (!this.res.writableEnded) this.res.end();
  }
}

/** `Last-Event-ID` (a reconnecting EventSource sends it) or `?after`, whichever is given. */
export function resumeFrom(req: HttpRequest, after: string | undefined): string | undefined {
  const header = req.headers['last-event-id'];
  return (typeof header === 'string' && header !== '' ? header : undefined) ?? after;
}
