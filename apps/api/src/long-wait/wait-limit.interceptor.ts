import {
  createParamDecorator,
  Injectable,
  SetMetadata,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { HttpRequest } from '../common/http.js';
import { createHash } from 'node:crypto';
import { HttpStatus } from '@nestjs/common';
import { catchError, finalize, map, throwError, type Observable } from 'rxjs';
import { CALLER, type Caller } from '../auth/access.js';
import { SharedLimits } from '@tagflow/queue';
import { ACCESS_ENDS, LiveAccess, type KeyEnded } from '../auth/live-access.js';
import { ApiError, RateLimited } from '../common/errors.js';
import { AppConfig } from '../config/app-config.js';
import { MetricsService } from '../metrics/metrics.service.js';

const LONG_WAIT = 'tagflow:long-wait';

/** Whether a request to a `@LongWait` route parks (a long-poll, a blocking read), from its raw query and body. */
type Parks = (req: HttpRequest) => boolean;

/**
 * How a poll route counts its wait. A poll that finds work at once does not park, so it is
 * counted only when it is about to (it asks the request's WaitPermit then): no Redis round
 * trip for a poll that is answered at once. `overLimit: 'answer'`: a request over the limit is
 * not refused but answered at once (report-and-poll: its reports are applied and its poll
 * answered with what it found).
 */
export interface WhenParked {
  overLimit: 'refuse' | 'answer';
}

/**
 * A route that can park the request; `parks` says whether this request does. Counted before
 * its handler runs, or with `whenParked` only once it is about to park (see WhenParked).
 */
export const LongWait = (parks: Parks, whenParked?: WhenParked) => SetMetadata(LONG_WAIT, { parks, whenParked });

const WAIT_PERMIT = Symbol('tagflow:wait-permit');

/**
 * Asked by a `whenParked` route before it parks: true when the wait is counted (it may park),
 * false when over the limit it must answer at once; throws 429 when over the limit it is refused.
 */
export type WaitPermit = () => Promise<boolean>;

/** The request's WaitPermit on a `whenParked` route that may park; undefined otherwise (it never parks). */
export const WaitPermitOf = createParamDecorator(
  (_data: unknown, ctx: ExecutionContext): WaitPermit | undefined =>
    ctx.switchToHttp().getRequest<Record<symbol, WaitPermit | undefined>>()[WAIT_PERMIT],
);

/** A followed stream: counted apart, against STREAMS_PER_CREDENTIAL (each costs the API a look at the database every second or so). */
export const FollowedStream = (parks: Parks) => SetMetadata(LONG_WAIT, { parks, stream: true });

/** Parks when `?wait_s` is a positive number (GET a task, a blocking data read). */
export const whenWaitAsked: Parks = (req) => Number((req.query as Record<string, unknown>).wait_s) > 0;
/** A poll parks unless its body says `wait_s: 0` (the default wait is not zero). */
export const unlessNoWait: Parks = (req) => (req.body as { wait_s?: unknown } | undefined)?.wait_s !== 0;

/**
 * Requests parked at once per credential (a key, a lease token, the open mode), on all
 * replicas together (SharedLimits): at most LONG_WAITS_PER_CREDENTIAL. The rate limit bounds how fast requests
 * arrive, not how many stay parked; each parked one holds a socket and memory until its
 * wait ends. One more is answered 429 with Retry-After, and changes nothing.
 *
 * A parked request also ends when its key is revoked or expires (LiveAccess): it is
 * answered 401 (a followed stream ends with an `error` event instead, having sent its
 * headers already).
 */
@Injectable()
export class WaitLimitInterceptor implements NestInterceptor {
  /** Parked requests counted here while Redis could not be reached. */
  private readonly parkedHere = new Map<string, number>();
  private readonly refused: () => void;

  constructor(
    private readonly reflector: Reflector,
    private readonly config: AppConfig,
    private readonly live: LiveAccess,
    private readonly shared: SharedLimits,
    metrics: MetricsService,
  ) {
    this.refused = metrics.counter(
      'tagflow_long_waits_refused_total',
      'Long-polls and blocking reads refused with 429: their credential had LONG_WAITS_PER_CREDENTIAL parked.',
    );
  }

  async intercept(ctx: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const rule = this.reflector.get<{ parks: Parks; whenParked?: WhenParked; stream?: boolean } | undefined>(
      LONG_WAIT,
      ctx.getHandler(),
    );
    const req = ctx
      .switchToHttp()
      .getRequest<HttpRequest & Record<symbol, Caller | AbortSignal | WaitPermit | undefined>>();
    if (!rule || !rule.parks(req)) return next.handle();
    const caller = req[CALLER] as Caller | undefined;
    const what = rule.stream ? 'streams' : 'waits';
    const credential = credentialOf(caller);
    const max = rule.stream ? this.config.STREAMS_PER_CREDENTIAL : this.config.LONG_WAITS_PER_CREDENTIAL;
    // One count however often the permit is asked, even twice at once.
    let counting: Promise<'shared' | 'here' | false> | undefined;
    const permit: WaitPermit = async () => {
      if (await (counting ??= this.acquire(what, credential, max))) return true;
      if (rule.whenParked?.overLimit === 'answer') return false;
      this.refused();
      throw new RateLimited(
        rule.stream
          ? `this credential already follows as many streams as STREAMS_PER_CREDENTIAL (${max}) allows, on all API replicas together; close one first`
          : `this credential already has as many requests waiting as LONG_WAITS_PER_CREDENTIAL (${max}) allows (long-polls, blocking reads, on all API replicas together); send this one once one of them is answered`,
        1,
        'TOO_MANY_WAITS',
      );
    };
    if (rule.whenParked) req[WAIT_PERMIT] = permit;
    else await permit();
    const access = this.live.watch(caller);
    req[ACCESS_ENDS] = access.signal;
    // Whatever the wait came to (an answer, a 404 pending), a key that ended gets 401.
    const ended = () => {
      const why = access.signal.reason as KeyEnded;
      return new ApiError(HttpStatus.UNAUTHORIZED, `${why.message}; the request ended`, undefined, why.code);
    };
    return next.handle().pipe(
      map((body: unknown) => {
        if (access.signal.aborted) throw ended();
        return body;
      }),
      catchError((e: unknown) => throwError(() => (access.signal.aborted ? ended() : e))),
      finalize(() => {
        access.release();
        void counting?.then((counted) => (counted ? this.release(what, credential, counted) : undefined));
      }),
    );
  }

  /**
   * Counts one more parked request of the credential on all replicas together (in Redis);
   * while Redis cannot be reached, on this replica at its share of the limit. Returns: where
   * it was counted, or false when the credential has no room left.
   */
  private async acquire(what: string, credential: string, max: number): Promise<'shared' | 'here' | false> {
    try {
      return (await this.shared.acquire(what, credential, max)) ? 'shared' : false;
    } catch {
      const key = `${what}/${credential}`;
      const n = this.parkedHere.get(key) ?? 0;
      if (n >= Math.max(1, Math.floor(max / this.shared.replicas))) return false;
      this.parkedHere.set(key, n + 1);
      return 'here';
    }
  }

  private async release(what: string, credential: string, where: 'shared' | 'here'): Promise<void> {
    if (where === 'shared') {
      // Redis away now: the count lapses with this replica's presence if it stops; else it is
      // off by one until the credential's counts expire (PRESENCE_TTL_MS * 2 without use).
      await this.shared.release(what, credential).catch(() => undefined);
      return;
    }
    const key = `${what}/${credential}`;
    const left = (this.parkedHere.get(key) ?? 1) - 1;
    if (left > 0) this.parkedHere.set(key, left);
    else this.parkedHere.delete(key);
  }
}

function credentialOf(caller: Caller | undefined): string {
  if (caller?.kind === 'key') return `key:${caller.keyId}`;
  if (caller?.kind === 'lease') return `lease:${createHash('sha256').update(caller.token).digest('hex').slice(0, 32)}`;
  return 'open';
}
