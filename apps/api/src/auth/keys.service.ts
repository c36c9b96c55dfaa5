import {
  HttpStatus,
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { DEFAULT_NAMESPACE, newId } from '@tagflow/domain';
import { Database, type ApiKeyEntity, type Role } from '@tagflow/persistence';
import { Bus } from '@tagflow/queue';
import { ApiError, badRequest, conflict, notFound } from '../common/errors.js';
import { namespaceOf, seesAllNamespaces, type Caller } from './access.js';
import { JsonLogger } from '../common/logger.js';
import { decodeCursor, pageOf, type Page, type PageQuery } from '../common/pagination.js';
import { AppConfig } from '../config/app-config.js';
import { SchedulesService } from '../schedules/schedules.service.js';

export interface NewKey {
  name: string;
  role: Role;
  /** Default: `*` for an admin key, else `default`. */
  namespace?: string;
  tags?: string[];
  expires_at?: number | null;
}

export interface KeyResponse {
  id: string;
  name: string;
  role: Role;
  namespace: string;
  tags: string[];
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
}

/** `tfk_` and 192 random bits, base64url. */
export function newToken(): string {
  return `tfk_${randomBytes(24).toString('base64url')}`;
}

/** How often each replica reads the live keys' hashes again (a key made on another replica, an expiry). */
const HASHES_REFRESH_MS = 5000;

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Writes a key for `token` (hashed) in its own transaction; the caller shows the token once. */
export async function insertKey(db: Database, spec: NewKey, token: string, now = Date.now()): Promise<ApiKeyEntity> {
  const key: ApiKeyEntity = {
    id: newId(now),
    name: spec.name,
    role: spec.role,
    namespace: spec.namespace ?? (spec.role === 'admin' ? '*' : DEFAULT_NAMESPACE),
    tags: spec.tags ?? ['*'],
    token_hash: tokenHash(token),
    created_at: now,
    expires_at: spec.expires_at ?? null,
    revoked_at: null,
  };
  await db.transaction((repos) => repos.keys.insert(key), now);
  return key;
}

/**
 * API keys: created (the token shown once), listed, revoked; and the lookup behind every
 * request. A key is read from the database at each request, so a revocation or an
 * expiry holds at the next request on every replica; what a key holds open (parked
 * polls, waits, streams) ends too (LiveAccess).
 *
 * With no key at all, the API is open: allowed only on a loopback address (main.ts refuses
 * any other, and the guard answers only loopback Host names), until the first key is made.
 */
@Injectable()
export class KeysService implements OnApplicationBootstrap, OnApplicationShutdown {
  private open = false;
  private hashes = new Set<string>();
  private hashTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Database,
    private readonly config: AppConfig,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    private readonly bus: Bus,
    private readonly schedules: SchedulesService,
  ) {}

  /** The first admin key comes from TAGFLOW_ADMIN_TOKEN: written if absent. */
  async onApplicationBootstrap(): Promise<void> {
    const token = this.config.TAGFLOW_ADMIN_TOKEN ?? this.config.API_TOKEN;
    if (token) {
      if (this.config.API_TOKEN && !this.config.TAGFLOW_ADMIN_TOKEN)
        this.logger.event(
          'warn',
          'auth',
          'API_TOKEN is deprecated: it now creates an admin key; set TAGFLOW_ADMIN_TOKEN instead',
        );
      const existing = await this.db.read().keys.byHash(tokenHash(token));
      if (!existing) await insertKey(this.db, { name: 'admin (from TAGFLOW_ADMIN_TOKEN)', role: 'admin' }, token);
      else if (existing.revoked_at !== null)
        this.logger.event('warn', 'auth', 'the key of TAGFLOW_ADMIN_TOKEN was revoked; it stays revoked');
    }
    this.open = !(await this.db.read().keys.any());
    await this.refreshHashes();
    this.hashTimer = setInterval(() => void this.refreshHashes(), HASHES_REFRESH_MS);
    this.hashTimer.unref();
  }

  onApplicationShutdown(): void {
    if (this.hashTimer) clearInterval(this.hashTimer);
  }

  /**
   * Whether a token's hash is one of a live key's, as this replica last read them (every
   * HASHES_REFRESH_MS, and at once for keys it creates): such a request is never held to
   * the limit of requests without a valid credential. Not an authentication: verify is.
   */
  knows(hash: string): boolean {
    return this.hashes.has(hash);
  }

  private async refreshHashes(): Promise<void> {
    try {
      this.hashes = new Set(await this.db.read().keys.liveHashes(Date.now()));
    } catch (e) {
      this.logger.event('warn', 'auth', 'could not read the live keys again; keeping the ones known', {
        error: String(e),
      });
    }
  }

  /**
   * True while no key was ever made (the local open mode). Keys are only revoked, never
   * deleted, so once one exists this stays false; while it is true it is checked again,
   * so a key made by another replica or by `keys create` ends it at once.
   */
  get isOpen(): boolean {
    return this.open;
  }

  async stillOpen(): Promise<boolean> {
    if (this.open && (await this.db.read().keys.any())) this.open = false;
    return this.open;
  }

  /** The live key a token belongs to, or why not. */
  async verify(
    token: string,
  ): Promise<{ key: ApiKeyEntity } | { refused: string; code: 'KEY_REVOKED' | 'KEY_EXPIRED' } | null> {
    const hash = tokenHash(token);
    const key = await this.db.read().keys.byHash(hash);
    if (!key || !timingSafeEqual(Buffer.from(key.token_hash), Buffer.from(hash))) return null;
    if (key.revoked_at !== null) return { refused: `key ${key.name} was revoked`, code: 'KEY_REVOKED' };
    if (key.expires_at !== null && key.expires_at <= Date.now())
      return { refused: `key ${key.name} expired at ${new Date(key.expires_at).toISOString()}`, code: 'KEY_EXPIRED' };
    return { key };
  }

  /**
   * A key in the namespace the request acts in unless the spec names one (an admin key made
   * by an all-namespaces caller: `*`, as the first key and `keys create` make them); only a
   * caller who sees every namespace may name another, or `*` (admin keys only).
   */
  async create(spec: NewKey, caller: Caller): Promise<KeyResponse & { token: string }> {
    const namespace =
      spec.namespace ?? (spec.role === 'admin' && seesAllNamespaces(caller) ? '*' : namespaceOf(caller));
    if (namespace === '*' && spec.role !== 'admin')
      throw badRequest(`namespace * is for admin keys only, not ${spec.role}`, [
        { field: 'namespace', errors: ['* needs role admin'] },
      ]);
    if (namespace !== namespaceOf(caller) && !seesAllNamespaces(caller)) {
      throw new ApiError(
        HttpStatus.FORBIDDEN,
        `an admin key of namespace ${namespaceOf(caller)} may create keys only in that namespace, not ${namespace}`,
        { namespace },
        'NAMESPACE_FORBIDDEN',
      );
    }
    spec = { ...spec, namespace };
    if (spec.expires_at !== undefined && spec.expires_at !== null && spec.expires_at <= Date.now())
      throw conflict('expires_at is in the past');
    const token = newToken();
    const key = await insertKey(this.db, spec, token);
    this.hashes.add(key.token_hash);
    this.open = false;
    this.logger.event('info', 'auth', 'key created', { key_id: key.id, name: key.name, role: key.role });
    return { ...toKeyResponse(key), token };
  }

  /** Keys of the caller's namespace (every key for a caller who sees every namespace). */
  async list(q: PageQuery, caller: Caller): Promise<Page<KeyResponse>> {
    const rows = await this.db
      .read()
      .keys.page(seesAllNamespaces(caller) ? undefined : namespaceOf(caller), decodeCursor(q.cursor), q.limit);
    return pageOf(rows, q.limit, toKeyResponse);
  }

  async revoke(id: string, caller: Caller): Promise<void> {
    if (!seesAllNamespaces(caller) && !(await this.db.read().keys.get(id, namespaceOf(caller))))
      throw notFound('key', id);
    const now = Date.now();
    const revoked = await this.db.transaction((repos) => repos.keys.revoke(id, now), now);
    if (!revoked && !(await this.db.read().keys.get(id))) throw notFound('key', id);
    this.logger.event('info', 'auth', 'key revoked', { key_id: id });
    // Its schedules may not run on without it (and the reconciler looks again at each tick).
    await this.schedules.pauseOwnerless().catch((e: unknown) =>
      this.logger.event('warn', 'auth', "could not pause the revoked key's schedules yet; the reconciler will", {
        key_id: id,
        error: String(e),
      }),
    );
    // What the key holds open on every replica ends now (LiveAccess); a lost announcement within ACCESS_CHECK_MS.
    await this.bus.publish([{ type: 'key-revoked', key: id }]).catch((e: unknown) =>
      this.logger.event('warn', 'auth', 'could not announce a revocation; replicas notice it at their next look', {
        key_id: id,
        error: String(e),
      }),
    );
  }
}

export function toKeyResponse(k: ApiKeyEntity): KeyResponse {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: k.id,
    name: k.name,
    role: k.role,
    namespace: k.namespace,
    tags: k.tags,
    expires_at: iso(k.expires_at),
    revoked_at: iso(k.revoked_at),
    created_at: iso(k.created_at)!,
  };
}
