import { ANY_TAG, isScopeTag, tagsMatch } from './tagset.js';

/**
 * Which tag sets a poll may take from: those whose every tag is among the poll's tags
 * (capabilities; see `tagsMatch`). Tag sets are filed under each of their plain tags, and
 * those with none (untagged tasks) under their scope. A poll counts, for each of its plain
 * tags, the tag sets filed there; a tag set fits when it was counted once per plain tag it
 * has and its scope is the poll's. The cost follows the tag sets that share a tag with the
 * poll, not the number of tag sets in all. (`*` looks at every tag set of its scope.)
 */
export class TagsetIndex {
  private readonly tagsById = new Map<string, readonly string[]>();
  private readonly plainCount = new Map<string, number>();
  private readonly idsByTag = new Map<string, Set<string>>();
  /** Every tag set by scope tag (for `*`), and those with no plain tag by scope tag ('': no scope tag). */
  private readonly idsByScope = new Map<string, Set<string>>();
  private readonly bareByScope = new Map<string, Set<string>>();

  /** Returns false when the tag set was already known. */
  add(id: string, tags: readonly string[]): boolean {
    if (this.tagsById.has(id)) return false;
    this.tagsById.set(id, [...tags]);
    const plain = tags.filter((t) => !isScopeTag(t));
    const scopes = tags.filter(isScopeTag);
    this.plainCount.set(id, plain.length);
    for (const tag of plain) file(this.idsByTag, tag, id);
    for (const scope of scopes.length ? scopes : ['']) file(this.idsByScope, scope, id);
    if (plain.length === 0) for (const scope of scopes.length ? scopes : ['']) file(this.bareByScope, scope, id);
    return true;
  }

  /** Forgets a tag set (its queue was closed). Returns false when it was not known. */
  remove(id: string): boolean {
    const tags = this.tagsById.get(id);
    if (!tags) return false;
    this.tagsById.delete(id);
    this.plainCount.delete(id);
    const scopes = tags.filter(isScopeTag);
    for (const tag of tags) if (!isScopeTag(tag)) unfile(this.idsByTag, tag, id);
    for (const scope of scopes.length ? scopes : ['']) {
      unfile(this.idsByScope, scope, id);
      unfile(this.bareByScope, scope, id);
    }
    return true;
  }

  /** Every tag set known. */
  ids(): IterableIterator<string> {
    return this.tagsById.keys();
  }

  tagsOf(id: string): readonly string[] | undefined {
    return this.tagsById.get(id);
  }

  get size(): number {
    return this.tagsById.size;
  }

  /** The tag sets a poll with these capabilities may take from. */
  matching(poll: readonly string[]): string[] {
    const have = new Set(poll);
    const scopes = [...have].filter(isScopeTag);
    const fits = (id: string) => tagsMatch(this.tagsById.get(id)!, poll);
    const out = new Set<string>();
    if (have.has(ANY_TAG)) {
      for (const scope of [...scopes, '']) for (const id of this.idsByScope.get(scope) ?? []) if (fits(id)) out.add(id);
      return [...out];
    }
    const counts = new Map<string, number>();
    for (const tag of have) {
      if (isScopeTag(tag)) continue;
      for (const id of this.idsByTag.get(tag) ?? []) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const [id, n] of counts) if (n === this.plainCount.get(id) && fits(id)) out.add(id);
    for (const scope of [...scopes, '']) for (const id of this.bareByScope.get(scope) ?? []) if (fits(id)) out.add(id);
    return [...out];
  }
}

/**
 * Parked polls, so an announcement for a tag set looks only at the polls that could take
 * from it: those whose capabilities include every tag of the set. A poll is filed under
 * each of its tags (and `*`); a tag set with plain tags looks at the polls filed under the
 * least crowded of them (and those with `*`), an untagged one at the polls of its scope.
 * 1,000 hosts each polling with its own host tag cost one check per announcement for a
 * task of one host, not 1,000.
 */
export class PollIndex<T extends { tags: readonly string[] }> {
  private readonly byTag = new Map<string, Set<T>>();
  private readonly polls = new Set<T>();

  get size(): number {
    return this.polls.size;
  }

  add(poll: T): void {
    if (this.polls.has(poll)) return;
    this.polls.add(poll);
    for (const tag of new Set(poll.tags)) file(this.byTag, tag, poll);
  }

  delete(poll: T): void {
    if (!this.polls.delete(poll)) return;
    for (const tag of new Set(poll.tags)) unfile(this.byTag, tag, poll);
  }

  /** The polls that may take a task carrying `tags`. */
  matching(tags: readonly string[]): T[] {
    return [...new Set(this.fitting(tags))];
  }

  /** The first poll that may take a task carrying `tags` and that `accept`s it; the same order as `matching`. */
  first(tags: readonly string[], accept: (poll: T) => boolean): T | undefined {
    for (const poll of this.fitting(tags)) if (accept(poll)) return poll;
    return undefined;
  }

  /** The polls that may take a task carrying `tags`, looked at one by one (a `*` poll may come twice). */
  private *fitting(tags: readonly string[]): Generator<T> {
    const plain = tags.filter((t) => !isScopeTag(t));
    const keys = plain.length ? plain : tags.filter(isScopeTag);
    let candidates: Iterable<T> = this.polls;
    if (keys.length) {
      let least: Set<T> | undefined;
      for (const key of keys) {
        const filed = this.byTag.get(key);
        if (!filed) {
          least = undefined;
          if (plain.length) break; // no poll has this tag: only `*` polls may fit
          continue;
        }
        if (!least || filed.size < least.size) least = filed;
      }
      candidates = least ?? [];
    }
    for (const poll of candidates) if (tagsMatch(tags, poll.tags)) yield poll;
    if (plain.length) for (const poll of this.byTag.get(ANY_TAG) ?? []) if (tagsMatch(tags, poll.tags)) yield poll;
  }

  all(): IterableIterator<T> {
    return this.polls.values();
  }
}

function file<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(value);
}

function unfile<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  const set = index.get(key);
  set?.delete(value);
  if (set?.size === 0) index.delete(key);
}
