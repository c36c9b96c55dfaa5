import {
  HttpException,
  Inject,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { HTTP_CODE_METADATA } from '@nestjs/common/constants.js';
import { catchError, from, mergeMap, throwError, type Observable } from 'rxjs';
import { DEFAULT_NAMESPACE } from '@tagflow/domain';
import { Database } from '@tagflow/persistence';
import { SharedLimits } from '@tagflow/queue';
import { pathOf, routeOf, type HttpRequest } from '../common/http.js';
import { JsonLogger } from '../common/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { CALLER, type Caller } from './access.js';

/**
 * Records every state-changing request (POST, PUT, PATCH, DELETE) with who made it, how
 * it ended and what it was about, once it has an answer. The worker protocol (poll,
 * heartbeat, reports) is left out: each of its transitions is already a task event, and
 * a row per report would double the writes of the hot path.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  private readonly refusals = new Map<string, { since: number; n: number }>();
  private readonly refusalsDropped: (labels?: Record<string, string>) => void;

  constructor(
    private readonly db: Database,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    private readonly shared: SharedLimits,
    metrics: MetricsService,
  ) {
    this.refusalsDropped = metrics.counter(
      'tagflow_audit_refusals_dropped_total',
      'Refused requests not recorded in the audit log: their key passed REFUSALS_PER_MINUTE.',
    );
  }

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = ctx.switchToHttp().getRequest<HttpRequest & Record<symbol, Caller | undefined>>();
    if (!audited(req)) return next.handle();
    return next.handle().pipe(
      mergeMap((body: unknown) => from(this.record(req, statusOf(ctx), resourceOf(body, req)).then(() => body))),
      catchError((e: unknown) =>
        from(this.record(req, e instanceof HttpException ? e.getStatus() : 500, resourceOf(undefined, req))).pipe(
          mergeMap(() => throwError(() => e)),
        ),
      ),
    );
  }

  /**
   * Records a request the guard refused (403) to a known key: what it tried is worth
   * knowing. At most REFUSALS_PER_MINUTE per key, so a key cannot fill the log (and the
   * database's writer) with refusals; the rest are counted.
   */
  async refused(req: HttpRequest, caller: Caller, status: number): Promise<void> {
    if (!audited(req)) return;
    const id = caller.kind === 'key' ? caller.keyId : '';
    if ((await this.refusalsThisMinute(id)) > REFUSALS_PER_MINUTE) {
      this.refusalsDropped();
      return;
    }
    await this.record(req, status, resourceOf(undefined, req), caller);
  }

  /** This key's refusals in the current minute, counted on all replicas together (here alone while Redis is away, at this replica's share). */
  private async refusalsThisMinute(id: string): Promise<number> {
    try {
      return await this.shared.count(`refusals:${id}`, 60_000);
    } catch {
      const now = Date.now();
      let window = this.refusals.get(id);
      if (!window || now - window.since >= 60_000) {
        if (this.refusals.size >= 10_000) this.refusals.clear();
        this.refusals.set(id, (window = { since: now, n: 0 }));
      }
      return ++window.n * this.shared.replicas;
    }
  }

  private async record(
    req: HttpRequest,
    status: number,
    resourceId: string | null,
    caller = (req as HttpRequest & Record<symbol, Caller | undefined>)[CALLER],
  ): Promise<void> {
    const who =
      caller?.kind === 'key'
        ? { key_id: caller.keyId, key_name: caller.keyName, namespace: caller.namespace }
        : caller?.kind === 'lease'
          ? { key_id: null, key_name: `(lease of task ${caller.task.id})`, namespace: caller.namespace }
          : {
              key_id: null,
              key_name: caller ? '(open: no key on a loopback API)' : '(none)',
              namespace: caller?.namespace ?? DEFAULT_NAMESPACE,
            };
    const at = Date.now();
    try {
      await this.db.transaction(
        (repos) =>
          repos.audit.add({
            at,
            ...who,
            method: req.method,
            path: pathOf(req).slice(0, 512),
            status,
            resource_id: resourceId,
          }),
        at,
      );
    } catch (e) {
      // The answer stands (the change is committed); a lost record is said loudly.
      this.logger.event('error', 'audit', 'could not write an audit record', {
        method: req.method,
        path: pathOf(req),
        error: String(e),
      });
    }
  }
}

const REFUSALS_PER_MINUTE = 30;
const WORKER_PROTOCOL =
  /^\/v1\/(tasks\/(poll|report|[^/]+\/(heartbeat|complete|fail|logs))|workers\/[^/]+\/heartbeat)\/?$/i;

/** State-changing requests, but the worker protocol's. */
function audited(req: HttpRequest): boolean {
  return req.method !== 'GET' && req.method !== 'HEAD' && !WORKER_PROTOCOL.test(routeOf(req));
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The status Nest will answer a handler's result with (it is set only when the answer is sent). */
function statusOf(ctx: ExecutionContext): number {
  const code = Reflect.getMetadata(HTTP_CODE_METADATA, ctx.getHandler()) as number | undefined;
  return code ?? (ctx.switchToHttp().getRequest<HttpRequest>().method === 'POST' ? 201 : 200);
}

/** What the request was about: the id in its answer (a new resource), else the id in its path. */
function resourceOf(body: unknown, req: HttpRequest): string | null {
  const answered = body && typeof body === 'object' && 'id' in body ? body.id : undefined;
  if (typeof answered === 'string' && UUID.test(answered)) return answered;
  const id = (req.params as Record<string, string | undefined>).id;
  return id && UUID.test(id) ? id : null;
}
