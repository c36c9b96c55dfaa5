import type { EntityManager } from 'typeorm';
import { ApiKeyEntity } from '../entities/api-key.entity.js';
import { insertRows, sql } from '../dialect.js';
import { hydrate } from '../rows.js';
import { newestFirst, rowById } from './pages.js';

/** API keys, found by the hash of their token. */
export class KeyRepository {
  constructor(private readonly em: EntityManager) {}

  /** Takes: a new key. Writes it. */
  async insert(key: ApiKeyEntity): Promise<void> {
    await insertRows(this.em, ApiKeyEntity, [key]);
  }

  /** Takes: the SHA-256 of a token (hex). Returns: the key with that hash, revoked or not, or null. */
  async byHash(tokenHash: string): Promise<ApiKeyEntity | null> {
    const { rows } = await sql(this.em, 'SELECT * FROM api_key WHERE token_hash = :h', { h: tokenHash });
    return rows[0] ? hydrate(this.em, ApiKeyEntity, rows[0]) : null;
  }

  /** Takes: an id and a namespace (undefined: any). Returns: the key (if it belongs there), or null. */
  get(id: string, namespace?: string): Promise<ApiKeyEntity | null> {
    return rowById(this.em, ApiKeyEntity, 'api_key', id, namespace);
  }

  /** Takes: a namespace (undefined: all) and a cursor. Returns: up to limit + 1 keys, newest first (revoked ones included). */
  page(
    namespace: string | undefined,
    before: { created_at: number; id: string } | null,
    limit: number,
  ): Promise<ApiKeyEntity[]> {
    return newestFirst(this.em, ApiKeyEntity, 'api_key', namespace, before, limit);
  }

  /** Takes: the clock. Returns: the token hashes of keys neither revoked nor expired. */
  async liveHashes(now: number): Promise<string[]> {
    const { rows } = await sql(
      this.em,
      'SELECT token_hash FROM api_key WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now)',
      { now },
    );
    return rows.map((r) => r.token_hash as string);
  }

  /** Returns: whether any key was ever made (revoked and expired ones count: keys are never deleted). */
  async any(): Promise<boolean> {
    const { rows } = await sql(this.em, 'SELECT id FROM api_key LIMIT 1');
    return rows.length > 0;
  }

  /** Takes: key ids. Returns: each of them that exists, with when it was revoked and when it expires. */
  async liveness(
    ids: readonly string[],
  ): Promise<{ id: string; revoked_at: number | null; expires_at: number | null }[]> {
    if (ids.length === 0) return [];
    const { rows } = await sql(this.em, 'SELECT id, revoked_at, expires_at FROM api_key WHERE id IN (:ids)', { ids });
    return rows.map((r) => ({
      id: r.id as string,
      revoked_at: r.revoked_at === null ? null : Number(r.revoked_at),
      expires_at: r.expires_at === null ? null : Number(r.expires_at),
    }));
  }

  /** Takes: an id and the clock. Revokes the key. Returns: whether it was live until now. */
  async revoke(id: string, now: number): Promise<boolean> {
    return (
      (await sql(this.em, 'UPDATE api_key SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL', { now, id }))
        .affected > 0
    );
  }
}
