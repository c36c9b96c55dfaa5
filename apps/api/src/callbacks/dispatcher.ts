import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { createHmac } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { backoffDelay } from '@tagflow/client';
import { Database, type CallbackDeliveryRow } from '@tagflow/persistence';
import { SharedLimits } from '@tagflow/queue';
import { AppConfig } from '../config/app-config.js';
import { JsonLogger } from '../common/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { BlockedAddressError, blockedHost, guardedLookup } from './addresses.js';

/** Deliveries this replica has in flight at most. */
const IN_FLIGHT_MAX = 32;
/** The most of a receiver's answer read (the rest is dropped). */
const ANSWER_MAX_BYTES = 64 * 1024;

/**
 * What `Tagflow-Signature` carries for a try made at `at` (ms): `t=<unix seconds>,v1=<hex
 * HMAC-SHA256 of "<t>.<body>" with the secret>`, Stripe's scheme. The time is signed with the
 * body so a receiver can refuse a copy of an old delivery sent to it again (it refuses a `t`
 * more than 5 minutes from its clock). `Tagflow-Delivery` and `Tagflow-Event` are not signed;
 * the body says what finished.
 */
export function signature(secret: string, body: string, at: number): string {
  const t = Math.floor(at / 1000);
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/**
 * Sends the callback outbox (engine/callbacks.ts writes it): every due delivery is claimed
 * in the database (so two replicas do not send it at once), POSTed with its signature, and
 * recorded: 2xx delivers it; anything else is tried again after a delay that doubles from
 * CALLBACK_RETRY_BASE_MS up to CALLBACK_RETRY_MAX_MS, with jitter, until CALLBACK_GIVE_UP_S
 * after the finish, when it is recorded as failed. A delivery whose sender died mid-try is
 * sent again once its claim lapses: receivers may see one twice (`Tagflow-Delivery` is its id).
 */
@Injectable()
export class CallbackDispatcher implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private stopping = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly tries: (labels?: Record<string, string>) => void;

  constructor(
    private readonly db: Database,
    private readonly config: AppConfig,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    private readonly limits: SharedLimits,
    metrics: MetricsService,
  ) {
    this.tries = metrics.counter(
      'tagflow_callback_attempts_total',
      'Callback deliveries tried, by outcome (delivered, retry, failed).',
    );
  }

  onApplicationBootstrap(): void {
    this.schedule(0);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    await Promise.all(this.inFlight);
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => {
        this.ticking = null;
        if (!this.stopping) this.schedule(this.config.RECONCILE_INTERVAL_MS);
      });
    }, ms);
  }

  private async tick(): Promise<void> {
    const room = IN_FLIGHT_MAX - this.inFlight.size;
    if (room <= 0) return;
    // One replica sends for all (see ReconcilerService); the others only finish what they started.
    if (!(await this.limits.holdDuty('callbacks', 10_000))) return;
    const now = this.db.now();
    let due: CallbackDeliveryRow[];
    try {
      due = await this.db.transaction(
        (repos) => repos.callbacks.claimDue(now, room, this.config.CALLBACK_TIMEOUT_MS + 5000),
        now,
      );
    } catch (e) {
      this.logger.event('warn', 'callbacks', 'could not look for due callbacks', { error: String(e) });
      return;
    }
    for (const d of due) {
      if (this.stopping) break; // its claim lapses; another API (or this one, restarted) sends it
      const sending: Promise<void> = this.deliver(d)
        .catch((e: unknown) =>
          this.logger.event('warn', 'callbacks', 'could not record a callback try; it is sent again later', {
            delivery_id: d.id,
            error: String(e),
          }),
        )
        .finally(() => this.inFlight.delete(sending));
      this.inFlight.add(sending);
    }
  }

  private async deliver(d: CallbackDeliveryRow): Promise<void> {
    const started = Date.now();
    let status: number | null = null;
    let error: string | null = null;
    let permanent = false;
    try {
      status = await this.post(d);
      if (status < 200 || status > 299) error = `the receiver answered ${status}`;
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
      permanent = e instanceof BlockedAddressError;
    }
    const now = this.db.now();
    const attempt = { at: now, status, error, ms: Date.now() - started };
    const delivered = error === null;
    const giveUp = permanent || now >= d.created_at + this.config.CALLBACK_GIVE_UP_S * 1000;
    const next = delivered || giveUp ? null : now + this.delay(d.attempts + 1);
    const recorded = await this.db.transaction(
      (repos) =>
        repos.callbacks.recordAttempt(d, attempt, delivered ? { delivered: true } : { delivered: false, next }, now),
      now,
    );
    if (!recorded) {
      this.logger.event(
        'warn',
        'callbacks',
        'a callback try outlived its claim: another try was made meanwhile; this one is not recorded',
        { delivery_id: d.id, status, error },
      );
      return;
    }
    this.tries({ outcome: delivered ? 'delivered' : next === null ? 'failed' : 'retry' });
    if (!delivered) {
      this.logger.event(
        next === null ? 'warn' : 'info',
        'callbacks',
        next === null ? 'gave up a callback' : 'a callback try failed; trying again later',
        {
          delivery_id: d.id,
          url: d.url,
          attempt: d.attempts + 1,
          error,
          ...(next ? { next_at: new Date(next).toISOString() } : {}),
        },
      );
    }
  }

  /** The delay before try `n + 1`: doubling from the base, capped, then between half and all of it. */
  private delay(n: number): number {
    return backoffDelay(
      Math.min(n - 1, 30),
      { baseMs: this.config.CALLBACK_RETRY_BASE_MS, maxMs: this.config.CALLBACK_RETRY_MAX_MS },
      () => 0.5 + Math.random() / 2,
    );
  }

  /** POSTs the body; resolves to the receiver's status. Refuses blocked addresses (BlockedAddressError). */
  private post(d: CallbackDeliveryRow): Promise<number> {
    const allowPrivate = this.config.CALLBACK_ALLOW_PRIVATE === '1';
    const why = allowPrivate ? null : blockedHost(d.url);
    if (why)
      return Promise.reject(new BlockedAddressError(`${why}: callbacks go there only with CALLBACK_ALLOW_PRIVATE=1`));
    const url = new URL(d.url);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(d.body)),
      'user-agent': 'tagflow-callbacks',
      'tagflow-event': d.event,
      'tagflow-delivery': d.id,
      // Signed at each try, by the database's clock (the one all replicas share): a retry hours later carries its own time.
      ...(d.secret ? { 'tagflow-signature': signature(d.secret, d.body, this.db.now()) } : {}),
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const timeoutMs = this.config.CALLBACK_TIMEOUT_MS;
    return new Promise<number>((resolve, reject) => {
      const req = send(
        url,
        { method: 'POST', headers, ...(allowPrivate ? {} : { lookup: guardedLookup }) },
        (res: IncomingMessage) => {
          let read = 0;
          res.on('data', (chunk: Buffer) => {
            read += chunk.length;
            if (read > ANSWER_MAX_BYTES) res.destroy();
          });
          res.on('close', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(res.statusCode ?? 0));
        },
      );
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (e) =>
        reject(
          e instanceof BlockedAddressError
            ? new BlockedAddressError(`${e.message}: callbacks go there only with CALLBACK_ALLOW_PRIVATE=1`)
            : e,
        ),
      );
      req.on('close', () => clearTimeout(timer));
      req.end(d.body);
    });
  }
}
