import type { EntityManager } from 'typeorm';
import { sql } from '../dialect.js';

export interface IdempotencyRecord {
  request_hash: string;
  /** Null while the first request with the key is being answered. */
  status: number | null;
  response: string | null;
  created_at: number;
}

/** Creating requests' answers by (credential, Idempotency-Key). */
export class IdempotencyRepository {
  constructor(private readonly em: EntityManager) {}

  /**
   * Takes: a credential, a key, the request's hash and the clock. Claims the key for this
   * request. Returns: null when claimed, else the record another request with the key left.
   */
  async claim(owner: string, key: string, requestHash: string, now: number): Promise<IdempotencyRecord | null> {
    const { rows } = await sql(
      this.em,
      'SELECT request_hash, status, response, created_at FROM idempotency WHERE owner = :owner AND key = :key',
      { owner, key },
    );
    if (rows[0])
      return {
        request_hash: rows[0].request_hash as string,
        status: rows[0].status === null ? null : Number(rows[0].status),
        response: rows[0].response as string | null,
        created_at: Number(rows[0].created_at),
      };
    await sql(
      this.em,
      'INSERT INTO idempotency (owner, key, request_hash, status, response, created_at) VALUES (:owner, :key, :hash, NULL, NULL, :now)',
      { owner, key, hash: requestHash, now },
    );
    return null;
  }

  /** Takes: a claimed key and the answer. Keeps the answer for the next request with the key. */
  async answer(owner: string, key: string, status: number, response: string): Promise<void> {
    await sql(
      this.em,
      'UPDATE idempotency SET status = :status, response = :response WHERE owner = :owner AND key = :key',
      { owner, key, status, response },
    );
  }

  /** Takes: a claimed key. Lets it go (the request failed in a way that may be sent again). */
  async release(owner: string, key: string): Promise<void> {
    await sql(this.em, 'DELETE FROM idempotency WHERE owner = :owner AND key = :key AND status IS NULL', {
      owner,
      key,
    });
  }

  /** Takes: a time. Deletes up to `limit` records made before it. Returns: how many. */
  async expire(before: number, limit: number): Promise<number> {
    return (
      await sql(
        this.em,
        'DELETE FROM idempotency WHERE id IN (SELECT id FROM idempotency WHERE created_at < :before ORDER BY id LIMIT :lim)',
        { before, lim: limit },
      )
    ).affected;
  }
}
