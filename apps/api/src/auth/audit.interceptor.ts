import { HttpException, Inject, Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { HTTP_CODE_METADATA } from '@nestjs/common/constants.js';
import type { Request } from 'express';
import { catchError, from, mergeMap, throwError, type Observable } from 'rxjs';
import { Database } from '@tagflow/persistence';
import { JsonLogger } from '../common/logger.js';
import { CALLER, type Caller } from './access.js';

/**
 * Records every state-changing request (POST, PUT, PATCH, DELETE) with who made it, how
 * it ended and what it was about, once it has an answer. The worker protocol (poll,
 * heartbeat, reports) is left out: each of its transitions is already a task event, and
 * a row per report would double the writes of the hot path.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  constructor(
    private readonly db: Database,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = ctx.switchToHttp().getRequest<Request & Record<symbol, Caller | undefined>>();
    if (req.method === 'GET' || req.method === 'HEAD' || WORKER_PROTOCOL.test(req.path)) return next.handle();
    return next.handle().pipe(
      mergeMap((body: unknown) => from(this.record(req, statusOf(ctx), resourceOf(body, req)).then(() => body))),
      catchError((e: unknown) => from(this.record(req, e instanceof HttpException ? e.getStatus() : 500, resourceOf(undefined, req))).pipe(mergeMap(() => throwError(() => e)))),
    );
  }

  private async record(req: Request & Record<symbol, Caller | undefined>, status: number, resourceId: string | null): Promise<void> {
    const caller = req[CALLER];
    const who = caller?.kind === 'key' ? { key_id: caller.keyId, key_name: caller.keyName, namespace: caller.namespace }
      : caller?.kind === 'lease' ? { key_id: null, key_name: '(task lease)', namespace: 'default' }
        : { key_id: null, key_name: caller ? '(open: no key on a loopback API)' : '(none)', namespace: 'default' };
    const at = Date.now();
    try {
      await this.db.transaction((repos) => repos.audit.add({ at, ...who, method: req.method, path: req.path.slice(0, 512), status, resource_id: resourceId }), at);
    } catch (e) {
      // The answer stands (the change is committed); a lost record is said loudly.
      this.logger.event('error', 'audit', 'could not write an audit record', { method: req.method, path: req.path, error: String(e) });
    }
  }
}

const WORKER_PROTOCOL = /^\/v1\/tasks\/(poll|[^/]+\/(heartbeat|complete|fail))\/?$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The status Nest will answer a handler's result with (it is set only when the answer is sent). */
function statusOf(ctx: ExecutionContext): number {
  const code = Reflect.getMetadata(HTTP_CODE_METADATA, ctx.getHandler()) as number | undefined;
  return code ?? (ctx.switchToHttp().getRequest<Request>().method === 'POST' ? 201 : 200);
}

/** What the request was about: the id in its answer (a new resource), else the id in its path. */
function resourceOf(body: unknown, req: Request): string | null {
  const answered = body && typeof body === 'object' && 'id' in body ? body.id : undefined;
  if (typeof answered === 'string' && UUID.test(answered)) return answered;
  const id = req.params.id as string | undefined;
  return id && UUID.test(id) ? id : null;
}
