import {
  createParamDecorator,
  Inject,
  Injectable,
  type ExecutionContext,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { Database } from '@tagflow/persistence';
import { Bus } from '@tagflow/queue';
import { JsonLogger } from '../common/logger.js';
import type { Caller } from './access.js';

/** How often the keys behind open requests are read again (a revocation whose announcement was lost; an expiry). */
export const ACCESS_CHECK_MS = 1000;

interface Watched {
  expiresAt: number | null;
  ends: Set<AbortController>;
}

/**
 * Ends what a key holds open once the key is revoked or expires: parked polls, long
 * waits and followed streams, on every replica. Each such request is watched under its
 * key (`watch`); a revocation is announced on the bus and ends them at once; every
 * ACCESS_CHECK_MS the watched keys are read again (an announcement lost with a dropped
 * subscription, a revocation by another installation's tool) and their expiry compared
 * with the clock. A request is told through its AbortSignal, whose reason says why.
 */
@Injectable()
export class LiveAccess implements OnApplicationShutdown {
  private readonly watched = new Map<string, Watched>();
  private timer: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(
    private readonly db: Database,
    bus: Bus,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {
    bus.onEvent((e) => {
      if (e.type === 'key-revoked') this.end(e.key, 'KEY_REVOKED');
    });
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * A signal that aborts when the caller's key is revoked or expires (other callers: one that
   * never does), and the release to call when the request is answered.
   */
  watch(caller: Caller | undefined): { signal: AbortSignal; release: () => void } {
    const controller = new AbortController();
    if (caller?.kind !== 'key') return { signal: controller.signal, release: () => undefined };
    let entry = this.watched.get(caller.keyId);
    if (!entry) this.watched.set(caller.keyId, (entry = { expiresAt: caller.expiresAt, ends: new Set() }));
    entry.ends.add(controller);
    this.timer ??= setInterval(() => void this.check(), ACCESS_CHECK_MS);
    const keyId = caller.keyId;
    // An expiry is known in advance: the request ends at that very moment.
    const expiry =
      caller.expiresAt === null
        ? undefined
        : setTimeout(
            () => controller.abort(new KeyEnded('KEY_EXPIRED')),
            Math.max(0, caller.expiresAt - this.db.now()),
          );
    return {
      signal: controller.signal,
      release: () => {
        clearTimeout(expiry);
        const e = this.watched.get(keyId);
        e?.ends.delete(controller);
        if (e?.ends.size === 0) this.watched.delete(keyId);
        if (this.watched.size === 0 && this.timer) {
          clearInterval(this.timer);
          this.timer = null;
        }
      },
    };
  }

  private end(keyId: string, code: KeyEnded['code']): void {
    const entry = this.watched.get(keyId);
    if (!entry) return;
    this.watched.delete(keyId);
    for (const c of entry.ends) c.abort(new KeyEnded(code));
  }

  private async check(): Promise<void> {
    if (this.checking || this.watched.size === 0) return;
    this.checking = true;
    try {
      const now = this.db.now();
      for (const [id, e] of this.watched) if (e.expiresAt !== null && e.expiresAt <= now) this.end(id, 'KEY_EXPIRED');
      const rows = await this.db.read().keys.liveness([...this.watched.keys()]);
      const found = new Map(rows.map((r) => [r.id, r]));
      for (const id of [...this.watched.keys()]) {
        const k = found.get(id);
        if (!k || k.revoked_at !== null) this.end(id, 'KEY_REVOKED');
        else if (k.expires_at !== null && k.expires_at <= now) this.end(id, 'KEY_EXPIRED');
      }
    } catch (e) {
      // The database is away: requests go on until it answers again (their own deadlines still hold).
      this.logger.event('warn', 'auth', 'could not read the keys of open requests again', { error: String(e) });
    } finally {
      this.checking = false;
    }
  }
}

/** Why a request's access ended (the reason of its AbortSignal). */
export class KeyEnded extends Error {
  constructor(readonly code: 'KEY_REVOKED' | 'KEY_EXPIRED') {
    super(code === 'KEY_REVOKED' ? 'the key was revoked' : 'the key expired');
  }
}

export const ACCESS_ENDS = Symbol('tagflow:access-ends');

/** Aborts when the caller's key is revoked or expires, on routes that park (`@AccessEnds() ends: AbortSignal`). */
export const AccessEnds = createParamDecorator((_data: unknown, ctx: ExecutionContext): AbortSignal => {
  const req = ctx.switchToHttp().getRequest<Record<symbol, AbortSignal | undefined>>();
  return req[ACCESS_ENDS] ?? new AbortController().signal;
});
