import {
  applyDecorators,
  HttpException,
  Inject,
  Injectable,
  SetMetadata,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { HTTP_CODE_METADATA } from '@nestjs/common/constants.js';
import { Reflector } from '@nestjs/core';
import { ApiExtension, ApiHeader } from '@nestjs/swagger';
import { createHash } from 'node:crypto';
import { catchError, from, mergeMap, of, throwError, type Observable } from 'rxjs';
import { Database } from '@tagflow/persistence';
import { CALLER, type Caller } from '../auth/access.js';
import { ApiError, badRequest, conflict, unprocessable } from './errors.js';
import { pathOf, type HttpReply, type HttpRequest } from './http.js';
import { JsonLogger } from './logger.js';

const IDEMPOTENT = 'tagflow:idempotent';
/**
 * A creating route: a request sent again with the same `Idempotency-Key` gets the first one's
 * answer. The OpenAPI document lists the header and the answers it adds (409 while the first
 * is answered, 422 for another request under the same key).
 */
export const Idempotent = () =>
  applyDecorators(
    SetMetadata(IDEMPOTENT, true),
    ApiExtension('x-idempotent', true),
    ApiHeader({
      name: 'Idempotency-Key',
      required: false,
      description: 'The same key on every retry of this call: a second request with it gets the first answer.',
    }),
  );

/** How long an answer is kept for its key. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
const KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * `Idempotency-Key` on creating POSTs (routes marked `@Idempotent()`), per credential:
 * the first request with a key is answered as usual and its answer kept a day; the same
 * request again gets that answer (`Idempotent-Replayed: true`) and creates nothing; the
 * key with a different request is 422; while the first is still being answered, 409.
 * A first request that failed in a way worth sending again (5xx) leaves the key free.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    private readonly db: Database,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (!this.reflector.get<boolean>(IDEMPOTENT, ctx.getHandler())) return next.handle();
    const req = ctx.switchToHttp().getRequest<HttpRequest & Record<symbol, Caller | undefined>>();
    const res = ctx.switchToHttp().getResponse<HttpReply>();
    const header = req.headers['idempotency-key'];
    if (header === undefined) return next.handle();
    if (typeof header !== 'string' || !KEY.test(header)) {
      throw badRequest('the Idempotency-Key header must be 1-255 printable ASCII characters', [
        { field: 'Idempotency-Key', errors: ['invalid key'] },
      ]);
    }
    const caller = req[CALLER];
    const owner =
      caller?.kind === 'key'
        ? `key:${caller.keyId}:${caller.namespace}`
        : `open:${caller?.kind === 'open' ? caller.namespace : '-'}`;
    const hash = createHash('sha256')
      .update(`${req.method} ${pathOf(req)}\n${JSON.stringify(req.body ?? null)}`)
      .digest('hex');
    const status = (Reflect.getMetadata(HTTP_CODE_METADATA, ctx.getHandler()) as number | undefined) ?? 201;

    return from(this.claim(owner, header, hash)).pipe(
      mergeMap((earlier) => {
        if (earlier) {
          void res.header('Idempotent-Replayed', 'true');
          void res.status(earlier.status);
          if (earlier.status >= 400)
            return throwError(() => new HttpException(earlier.body as Record<string, unknown>, earlier.status));
          return of(earlier.body);
        }
        return next.handle().pipe(
          mergeMap((body: unknown) => from(this.keep(owner, header, status, body)).pipe(mergeMap(() => of(body)))),
          catchError((e: unknown) => {
            const failed = e instanceof HttpException ? e.getStatus() : 500;
            const kept =
              failed < 500
                ? this.keep(owner, header, failed, e instanceof HttpException ? e.getResponse() : null)
                : this.release(owner, header);
            return from(kept).pipe(mergeMap(() => throwError(() => e)));
          }),
        );
      }),
    );
  }

  /** The earlier answer for this key, or null once this request holds the key. */
  private async claim(owner: string, key: string, hash: string): Promise<{ status: number; body: unknown } | null> {
    const now = Date.now();
    let earlier;
    try {
      earlier = await this.db.transaction((repos) => repos.idempotency.claim(owner, key, hash, now), now);
    } catch (e) {
      // Two requests with one key at the same moment: the unique index let one in.
      if (isUniqueViolation(e)) throw inFlight(key);
      throw e;
    }
    if (!earlier || earlier.created_at < now - IDEMPOTENCY_TTL_MS) {
      if (earlier) {
        await this.db.transaction((repos) => repos.idempotency.expire(now - IDEMPOTENCY_TTL_MS, 1000), now);
        return this.claim(owner, key, hash);
      }
      return null;
    }
    if (earlier.request_hash !== hash) {
      throw unprocessable(
        `Idempotency-Key ${key} was used with a different request; use a new key for a new request`,
        [{ field: 'Idempotency-Key', errors: ['used with a different request'] }],
        'IDEMPOTENCY_MISMATCH',
      );
    }
    if (earlier.status === null) throw inFlight(key);
    return {
      status: earlier.status,
      body: earlier.response === null ? null : (JSON.parse(earlier.response) as unknown),
    };
  }

  private async keep(owner: string, key: string, status: number, body: unknown): Promise<void> {
    try {
      await this.db.transaction((repos) => repos.idempotency.answer(owner, key, status, JSON.stringify(body ?? null)));
    } catch (e) {
      // The request's own work is done; a retry with this key gets 409 until the record expires.
      this.logger.event('error', 'idempotency', 'could not keep the answer of a request with an Idempotency-Key', {
        key,
        error: String(e),
      });
    }
  }

  private async release(owner: string, key: string): Promise<void> {
    await this.db
      .transaction((repos) => repos.idempotency.release(owner, key))
      .catch((e: unknown) =>
        this.logger.event('error', 'idempotency', 'could not free an Idempotency-Key after a failed request', {
          key,
          error: String(e),
        }),
      );
  }
}

function inFlight(key: string): ApiError {
  return conflict(
    `a request with Idempotency-Key ${key} is still being answered (or its API stopped before answering); look for what it made before sending a new request`,
    undefined,
    'IDEMPOTENCY_IN_PROGRESS',
  );
}

function isUniqueViolation(e: unknown): boolean {
  const code =
    (e as { code?: unknown; driverError?: { code?: unknown } }).driverError?.code ?? (e as { code?: unknown }).code;
  return (
    code === '23505' ||
    code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    (e instanceof Error && /UNIQUE constraint failed/.test(e.message))
  );
}
