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

  /** The tag set's queue was destroyed: its entry goes (the next enqueue records it again). */
  async unregister(tagset: string): Promise<void> {
    this.known.delete(tagset);
    await this.redis.command.hdel(this.key, tagset);
  }

  /** Another replica destroyed its queue: record it again at the next enqueue here. */
  forgetLocally(tagset: string): void {
    this.known.delete(tagset);
  }

  /** Another replica announced work on it, so it is recorded. */
  markKnown(tagset: string): void {
    this.known.add(tagset);
  }

  /** Redis lost its data: everything must be recorded again. */
  forget(): void {
    this.known.clear();
  }

  /**
   * Every tag set recorded, with its tags. An entry that is not a list of strings (written
   * by hand, or damaged) is left out and handed to `onBad`: one bad entry must not stop a
   * replica from starting. Its tasks are not lost: the reconciler queues READY tasks again
   * and the next enqueue records their tag set anew.
   */
  async all(onBad: (id: string, raw: string) => void = () => undefined): Promise<Map<string, string[]>> {
    const raw = await this.redis.command.hgetall(this.key);
    const sets = new Map<string, string[]>();
    for (const [id, text] of Object.entries(raw)) {
      let tags: unknown;
      try {
        tags = JSON.parse(text);
      } catch {
        tags = undefined;
      }
      if (Array.isArray(tags) && tags.every((t) => typeof t === 'string')) sets.set(id, tags);
      else onBad(id, text);
    }
    return sets;
  }
}
