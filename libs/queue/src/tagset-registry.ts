import type { RedisConnections } from './redis.js';

/**
 * Every tag set that ever had work, with its tags (hash `<prefix>:tagsets`), so a
 * replica that starts learns which queues exist. Written once per tag set per replica.
 */
export class TagsetRegistry {
  private readonly known = new Set<string>();
  private readonly key: string;

  constructor(private readonly redis: RedisConnections) {
    this.key = redis.key('tagsets');
  }

  /** Records a tag set (a no-op once this replica knows it is recorded). */
  async register(tagset: string, tags: readonly string[]): Promise<void> {
    if (this.known.has(tagset)) return;
    await this.redis.command.hset(this.key, tagset, JSON.stringify(tags));
    this.known.add(tagset);
  }

  /** Another replica announced work on it, so it is recorded. */
  markKnown(tagset: string): void {
    this.known.add(tagset);
  }

  /** Redis lost its data: everything must be recorded again. */
  forget(): void {
    this.known.clear();
  }

  /** Every tag set recorded, with its tags. */
  async all(): Promise<Map<string, string[]>> {
    const raw = await this.redis.command.hgetall(this.key);
    return new Map(Object.entries(raw).map(([id, tags]) => [id, JSON.parse(tags) as string[]]));
  }
}
