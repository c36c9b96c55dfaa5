import { StringDecoder } from 'node:string_decoder';
import { LAST_OUTPUT_WAIT_MS, LIMITS } from '@tagflow/domain';
import { TagflowApiError, type LeasedTask, type TagflowClient } from '@tagflow/client';

type Stream = 'stdout' | 'stderr';

/** How often a running task's new output is sent. */
export const LOG_FLUSH_MS = 200;
/** Output waiting to be sent, per stream: beyond it the oldest is dropped (the API keeps the last 1 MiB anyway). */
const PENDING_MAX_BYTES = LIMITS.logStreamKeptBytes;

interface Pending {
  decoder: StringDecoder;
  text: string;
  dropped: number;
}

interface Live {
  task: LeasedTask;
  streams: Record<Stream, Pending>;
  /** The API refused this attempt's output (the lease is gone): nothing more is sent. */
  closed: boolean;
  sending: Promise<void>;
  /** A send is under way: the timer does not queue another behind it. */
  busy: boolean;
}

/** A piece's size on the wire (JSON-escaped control characters take up to 6 bytes each), kept under the API's 256 KiB. */
const PIECE_MAX_JSON_BYTES = 240 * 1024;

/**
 * Sends a running task's output to the API as it is written (`POST /v1/tasks/:id/logs`),
 * every LOG_FLUSH_MS, one request per stream with what came meanwhile. Output is decoded
 * as UTF-8 across chunk boundaries. The API being away costs nothing but the live view:
 * what could not be sent is kept (bounded) and tried again, and the report still carries
 * the last 64 KiB.
 */
export class LogStreamer {
  private readonly live = new Map<string, Live>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly client: TagflowClient,
    private readonly warn: (msg: string, fields: Record<string, unknown>) => void,
  ) {
    this.timer = setInterval(() => this.flushAll(), LOG_FLUSH_MS);
    this.timer.unref();
  }

  open(task: LeasedTask): void {
    const pending = (): Pending => ({ decoder: new StringDecoder('utf8'), text: '', dropped: 0 });
    this.live.set(task.lease.token, {
      task,
      streams: { stdout: pending(), stderr: pending() },
      closed: false,
      sending: Promise.resolve(),
      busy: false,
    });
  }

  /** Keyed by lease token: a later attempt of the same task is another stream. */
  write(leaseToken: string, stream: Stream, chunk: Buffer): void {
    const live = this.live.get(leaseToken);
    if (!live || live.closed) return;
    const p = live.streams[stream];
    p.text += p.decoder.write(chunk);
    trim(p);
  }

  /** Sends what is left of the attempt's output (waiting at most `waitMs`) and forgets the task. */
  async close(leaseToken: string, waitMs = LAST_OUTPUT_WAIT_MS): Promise<void> {
    const live = this.live.get(leaseToken);
    if (!live) return;
    for (const s of ['stdout', 'stderr'] as const) live.streams[s].text += live.streams[s].decoder.end();
    const last = this.send(live);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([last, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    this.live.delete(leaseToken);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private flushAll(): void {
    for (const live of this.live.values()) if (!live.busy) void this.send(live);
  }

  /** One send at a time per task, so the API receives the output in order. */
  private send(live: Live): Promise<void> {
    live.sending = live.sending.then(() => this.sendNow(live));
    return live.sending;
  }

  private async sendNow(live: Live): Promise<void> {
    live.busy = true;
    try {
      for (const stream of ['stdout', 'stderr'] as const) {
        const p = live.streams[stream];
        while (!live.closed && p.text.length > 0) {
          const dropped = p.dropped;
          const marker = dropped > 0 ? `[... ${dropped} characters of output not sent ...]\n` : '';
          const piece = pieceOf(p.text, PIECE_MAX_JSON_BYTES - marker.length);
          // Taken off before the request: output written meanwhile (and trimmed) is after it.
          p.text = p.text.slice(piece.length);
          p.dropped -= dropped;
          try {
            await this.client.appendLog(live.task.id, live.task.lease.token, stream, marker + piece);
          } catch (e) {
            if (e instanceof TagflowApiError && (e.status === 404 || e.status === 409)) {
              live.closed = true; // the lease is gone: nothing more for this attempt
              return;
            }
            if (e instanceof TagflowApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
              // This piece is refused (400, 413): skip it, say so in the next one, go on.
              p.dropped += dropped + piece.length;
              this.warn('a piece of live output was refused; it is left out', {
                task_id: live.task.id,
                status: e.status,
                message: e.message,
              });
              continue;
            }
            // Away or busy: put it back in front, the next flush tries again.
            p.text = piece + p.text;
            p.dropped += dropped;
            trim(p);
            return;
          }
        }
      }
    } finally {
      live.busy = false;
    }
  }
}

/** Keeps the newest PENDING_MAX_BYTES characters of what waits to be sent. */
function trim(p: Pending): void {
  if (p.text.length <= PENDING_MAX_BYTES) return;
  p.dropped += p.text.length - PENDING_MAX_BYTES;
  p.text = p.text.slice(p.text.length - PENDING_MAX_BYTES);
}

/** The next piece to send: at most `maxJsonBytes` once JSON-encoded. */
function pieceOf(text: string, maxJsonBytes: number): string {
  let piece = sliceUtf8(text, maxJsonBytes);
  while (piece.length > 1 && Buffer.byteLength(JSON.stringify(piece)) > maxJsonBytes)
    piece = sliceUtf8(piece, Math.floor(Buffer.byteLength(piece) / 2));
  return piece;
}

/** The longest prefix of `text` whose UTF-8 encoding fits in `maxBytes`, not splitting a surrogate pair. */
function sliceUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes) return text;
  let lo = 0;
  let hi = Math.min(text.length, maxBytes);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (Buffer.byteLength(text.slice(0, mid)) <= maxBytes) lo = mid;
    else hi = mid - 1;
  }
  const code = text.charCodeAt(lo - 1);
  return code >= 0xd800 && code <= 0xdbff ? text.slice(0, lo - 1) : text.slice(0, lo);
}
