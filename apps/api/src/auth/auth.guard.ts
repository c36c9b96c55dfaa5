import { HttpStatus, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { routeOf, type HttpReply, type HttpRequest } from '../common/http.js';
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
/** How long a request's body may take to arrive once its caller is admitted (408 after). */
const BODY_READ_TIMEOUT_MS = 30_000;
/** A body that took this long to arrive: its credential is checked again before the request runs. */
const RECHECK_AFTER_MS = 100;
/** Valid tokens remembered per replica (their hashes), so they never wait for their address. */
const KNOWN_VALID_MAX = 10_000;

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
    const req = ctx.switchToHttp().getRequest<HttpRequest & Record<symbol, Caller>>();
    const action = `${req.method} ${routeOf(req)}`;
    if (access === undefined)
      throw new ApiError(
        HttpStatus.FORBIDDEN,
        `${action} declares no access rule; nobody may call it`,
        undefined,
        'ROLE_FORBIDDEN',
      );
    if (access === 'public') return true;
    const leaseTokens = this.reflector.get<boolean>(LEASE_TOKEN_ACCESS, ctx.getHandler()) === true;
    const caller = await this.admit(req, access, action, leaseTokens);
    req[CALLER] = caller;
    const res = ctx.switchToHttp().getResponse<HttpReply>().raw;
    // The client held back its body until told to go on (Expect: 100-continue): only now.
    if (/^100-continue$/i.test(req.headers.expect ?? '')) res.writeContinue();
    const started = Date.now();
    req.body = await readJsonBody(req.raw, res, this.config.BODY_LIMIT_BYTES, BODY_READ_TIMEOUT_MS);
    // A body that took its time: the credential is looked at again, as it may have ended meanwhile.
    if (Date.now() - started >= RECHECK_AFTER_MS) await this.stillValid(req, caller, leaseTokens);
    return true;
  }

  /** 401 unless the caller's key (or lease) is still live: after a slow body. */
  private async stillValid(req: HttpRequest, caller: Caller, leaseTokens: boolean): Promise<void> {
    if (caller.kind === 'open') return;
    const again = await this.admit(req, [caller.kind === 'key' ? caller.role : 'worker'], '', leaseTokens, false);
    if (again.kind !== caller.kind)
      throw new ApiError(HttpStatus.UNAUTHORIZED, 'the credential ended while the request was sent');
  }

  /**
   * Who is calling, or why not (401, 403, 429). A token that is not a live key this replica
   * knows of (KeysService.knows), nor a key or lease it saw valid lately, costs its client
   * address a request of RATE_LIMIT_ANON_* before it is looked up (given back when it turns
   * out valid), so a flood of made-up tokens reaches the database at the address's rate; a
   * known key never waits for its address.
   */
  private async admit(
    req: HttpRequest,
    access: readonly string[],
    action: string,
    leaseTokens: boolean,
    count = true,
  ): Promise<Caller> {
    const token = await this.bearer(req);
    if (token === null) {
      if (await this.keys.stillOpen()) {
        // A web page could reach a loopback API through a name that resolves to it (DNS rebinding).
        if (!loopbackHost(req.headers.host))
          throw await this.unauthenticated(
            req,
            'with no API key, the API answers only requests to a loopback host name',
          );
        return { kind: 'open', namespace: namespaceHeader(req) ?? DEFAULT_NAMESPACE };
      }
      throw await this.unauthenticated(req, 'missing Authorization: Bearer <token> header');
    }
    const hash = tokenHash(token);
    const seen = this.knownValid.get(hash);
    const known = seen !== undefined || this.keys.knows(hash);
    if (!known && count && (await this.limiter.take(this.anonymousBucket(req), this.anonymousRate())) !== null)
      throw this.anonymousLimited();
    // A key seen valid here lately: its request's token is taken while the key is looked up
    // again (it is looked up every time: a revoked key is refused on its next request).
    const early = count && seen !== undefined ? this.limiter.take(`key:${seen}`) : undefined;
    const found = await this.keys.verify(token);
    if (found !== null && !('refused' in found)) {
      if (!known && count) await this.limiter.giveBack(this.anonymousBucket(req), this.anonymousRate());
      this.remember(hash, found.key.id);
      // Per credential, counted once it is known (a made-up token gets no bucket of its own).
      const wait = count ? await (seen === found.key.id ? early! : this.limiter.take(`key:${found.key.id}`)) : null;
      if (wait !== null)
        throw new RateLimited(
          `this credential sent more than ${this.config.RATE_LIMIT_RPS} requests a second (RATE_LIMIT_RPS); retry in ${wait} s`,
          wait,
        );
    }
    if (found === null) {
      // A running task's lease token, where the route takes one: its own workflow's data space.
      const workflowId = (req.params as Record<string, string | undefined>).id;
      const holder =
        leaseTokens && typeof workflowId === 'string'
          ? await this.db.read().leases.holder(workflowId, token, this.db.now())
          : null;
      if (holder) {
        if (!known && count) await this.limiter.giveBack(this.anonymousBucket(req), this.anonymousRate());
        const wait = count ? await this.limiter.take(`lease:${hash}`) : null;
        if (wait !== null)
          throw new RateLimited(
            `this lease sent more than ${this.config.RATE_LIMIT_RPS} requests a second (RATE_LIMIT_RPS); retry in ${wait} s`,
            wait,
          );
        return { kind: 'lease', token, namespace: holder.namespace, task: holder };
      }
      // Counted against the address already, before the look-up.
      throw new ApiError(
        HttpStatus.UNAUTHORIZED,
        leaseTokens
          ? `the bearer token is neither a valid key nor the live lease of a running task of workflow ${String(workflowId)}`
          : 'the bearer token is not a valid key',
      );
    }
    if ('refused' in found) {
      this.knownValid.delete(hash);
      throw new ApiError(HttpStatus.UNAUTHORIZED, found.refused, undefined, found.code);
    }
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

  /** A 401 for a request without a token, counted against the client's address (over its limit: a 429 instead). */
  private async unauthenticated(req: HttpRequest, message: string): Promise<ApiError> {
    if ((await this.limiter.take(this.anonymousBucket(req), this.anonymousRate())) !== null)
      return this.anonymousLimited();
    return new ApiError(HttpStatus.UNAUTHORIZED, message);
  }

  /** Tokens (their hashes) that were valid keys lately on this replica, with their key's id; least recently seen first. */
  private readonly knownValid = new Map<string, string>();

  private remember(hash: string, keyId: string): void {
    this.knownValid.delete(hash);
    this.knownValid.set(hash, keyId);
    if (this.knownValid.size > KNOWN_VALID_MAX) this.knownValid.delete(this.knownValid.keys().next().value!);
  }

  /** The bearer token, or null without an Authorization header; a malformed one is a 401 counted against the address. */
  private async bearer(req: HttpRequest): Promise<string | null> {
    const header = req.headers.authorization;
    if (header === undefined) return null;
    const match = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
    if (!match) throw await this.unauthenticated(req, 'the Authorization header must be "Bearer <token>"');
    return match[1];
  }

  private anonymousRate(): { rps: number; burst: number } {
    return { rps: this.config.RATE_LIMIT_ANON_RPS, burst: this.config.RATE_LIMIT_ANON_BURST };
  }

  private anonymousBucket(req: HttpRequest): string {
    return `anon:${req.ip ?? req.raw.socket.remoteAddress ?? '?'}`;
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
function namespaceHeader(req: HttpRequest): string | null {
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
