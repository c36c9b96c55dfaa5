import { HttpStatus, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { DEFAULT_NAMESPACE, NAMESPACE_PATTERN, type ErrorCode } from '@tagflow/domain';
import { Database } from '@tagflow/persistence';
import { readJsonBody } from '../common/body.js';
import { ApiError, badRequest, RateLimited } from '../common/errors.js';
import { ACCESS, CALLER, LEASE_TOKEN_ACCESS, type Access, type Caller } from './access.js';
import { KeysService, tokenHash } from './keys.service.js';
import { RateLimiter } from './rate-limiter.js';
import { AppConfig } from '../config/app-config.js';
import { AuditInterceptor } from './audit.interceptor.js';

/**
 * Authentication and roles, for every route, decided on the route the router matched
 * (its handler's `@Public()` / `@Allow(...)`), never on the URL's spelling: `/V1/...`,
 * `//v1/...`, a trailing slash or percent-encoding reach the same handler and the same
 * check. Missing or unknown credentials: 401; a role doing what it may not: 403 naming
 * the role and the route.
 *
 * Nothing heavy happens before the caller is known: the request's body is read and
 * parsed here, only once the caller is admitted (a refused request's body is never read;
 * the answer closes its connection). Requests that need a credential and bring none that
 * is valid are limited per client address (RATE_LIMIT_ANON_*): over it, 429 instead of
 * 401. A valid credential is never refused for its address.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly keys: KeysService,
    private readonly audit: AuditInterceptor,
    private readonly limiter: RateLimiter,
    private readonly config: AppConfig,
    private readonly db: Database,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const access = this.reflector.getAllAndOverride<Access | undefined>(ACCESS, [ctx.getHandler(), ctx.getClass()]);
    const req = ctx.switchToHttp().getRequest<Request & Record<symbol, Caller>>();
    const action = `${req.method} ${routeOf(req)}`;
    if (access === undefined)
      throw new ApiError(
        HttpStatus.FORBIDDEN,
        `${action} declares no access rule; nobody may call it`,
        undefined,
        'ROLE_FORBIDDEN',
      );
    if (access === 'public') return true;
    req[CALLER] = await this.admit(
      req,
      access,
      action,
      this.reflector.get<boolean>(LEASE_TOKEN_ACCESS, ctx.getHandler()) === true,
    );
    await readJsonBody(req, ctx.switchToHttp().getResponse<Response>(), this.config.BODY_LIMIT_BYTES);
    return true;
  }

  /** Who is calling, or why not (401, 403, 429). */
  private async admit(req: Request, access: readonly string[], action: string, leaseTokens: boolean): Promise<Caller> {
    const token = bearer(req);
    if (token === null) {
      if (await this.keys.stillOpen()) {
        // A web page could reach a loopback API through a name that resolves to it (DNS rebinding).
        if (!loopbackHost(req.headers.host))
          throw this.unauthenticated(req, 'with no API key, the API answers only requests to a loopback host name');
        return { kind: 'open', namespace: namespaceHeader(req) ?? DEFAULT_NAMESPACE };
      }
      throw this.unauthenticated(req, 'missing Authorization: Bearer <token> header');
    }
    // Per credential, counted before the key is looked up (so a flood with one token does not reach the database).
    const wait = this.limiter.take(tokenHash(token));
    if (wait !== null)
      throw new RateLimited(
        `this credential sent more than ${this.config.RATE_LIMIT_RPS} requests a second (RATE_LIMIT_RPS); retry in ${wait} s`,
        wait,
      );
    const found = await this.keys.verify(token);
    if (found === null) {
      // A running task's lease token, where the route takes one: its own workflow's data space.
      const workflowId = req.params.id;
      const holder =
        leaseTokens && typeof workflowId === 'string'
          ? await this.db.read().tasks.leaseHolder(workflowId, token, this.db.now())
          : null;
      if (holder) return { kind: 'lease', token, namespace: holder.namespace, task: holder };
      throw this.unauthenticated(
        req,
        leaseTokens
          ? `the bearer token is neither a valid key nor the live lease of a running task of workflow ${String(workflowId)}`
          : 'the bearer token is not a valid key',
      );
    }
    if ('refused' in found) throw this.unauthenticated(req, found.refused, found.code);
    const { key } = found;
    const asked = namespaceHeader(req);
    const allNamespaces = key.namespace === '*';
    const namespace = allNamespaces ? (asked ?? DEFAULT_NAMESPACE) : key.namespace;
    const caller: Caller = {
      kind: 'key',
      keyId: key.id,
      keyName: key.name,
      role: key.role,
      namespace,
      allNamespaces,
      grants: key.tags,
      expiresAt: key.expires_at,
    };
    // A known key refused: recorded in the audit log (an unknown token is not: anyone can send one).
    const refuse = async (message: string, details: object, code: ErrorCode) => {
      await this.audit.refused(req, caller, HttpStatus.FORBIDDEN);
      return new ApiError(HttpStatus.FORBIDDEN, message, details, code);
    };
    if (!access.includes(key.role))
      throw await refuse(`role ${key.role} may not ${action}`, { role: key.role }, 'ROLE_FORBIDDEN');
    if (!allNamespaces && asked !== null && asked !== key.namespace) {
      throw await refuse(
        `key ${key.name} belongs to namespace ${key.namespace}; it may not act in namespace ${asked} (Tagflow-Namespace)`,
        { namespace: asked },
        'NAMESPACE_FORBIDDEN',
      );
    }
    return caller;
  }

  /** A 401, counted against the client's address (over its limit: a 429 instead). */
  private unauthenticated(req: Request, message: string, code: ErrorCode = 'UNAUTHENTICATED'): ApiError {
    if (this.limiter.take(this.anonymousBucket(req), undefined, this.anonymousRate()) !== null)
      return this.anonymousLimited();
    return new ApiError(HttpStatus.UNAUTHORIZED, message, undefined, code);
  }

  private anonymousRate(): { rps: number; burst: number } {
    return { rps: this.config.RATE_LIMIT_ANON_RPS, burst: this.config.RATE_LIMIT_ANON_BURST };
  }

  private anonymousBucket(req: Request): string {
    return `anon:${req.ip ?? req.socket.remoteAddress ?? '?'}`;
  }

  private anonymousLimited(): RateLimited {
    const wait = Math.max(1, Math.ceil(1 / Math.max(this.config.RATE_LIMIT_ANON_RPS, 1)));
    return new RateLimited(
      `too many requests without a valid credential from this address (RATE_LIMIT_ANON_RPS=${this.config.RATE_LIMIT_ANON_RPS}); retry in ${wait} s`,
      wait,
    );
  }
}

function loopbackHost(host: string | undefined): boolean {
  const name = (host ?? '').replace(/:\d+$/, '').toLowerCase();
  return name === 'localhost' || name === '[::1]' || /^127(\.\d{1,3}){3}$/.test(name);
}

/** The `Tagflow-Namespace` header, checked; null without one. */
function namespaceHeader(req: Request): string | null {
  const value = req.headers['tagflow-namespace'];
  if (value === undefined) return null;
  if (typeof value !== 'string' || !NAMESPACE_PATTERN.test(value)) {
    throw badRequest(
      'the Tagflow-Namespace header must be a namespace: 1-63 characters of a-z, 0-9 and -, starting and ending with a letter or digit',
      [{ field: 'Tagflow-Namespace', errors: ['invalid namespace'] }],
    );
  }
  return value;
}

function bearer(req: Request): string | null {
  const header = req.headers.authorization;
  if (header === undefined) return null;
  const match = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
  if (!match) throw new ApiError(HttpStatus.UNAUTHORIZED, 'the Authorization header must be "Bearer <token>"');
  return match[1];
}

/** The route pattern the router matched (`/v1/tasks/:id`), not the path as the client spelled it. */
function routeOf(req: Request): string {
  const route = (req as unknown as { route?: { path?: unknown } }).route;
  return typeof route?.path === 'string' ? route.path : req.path;
}
