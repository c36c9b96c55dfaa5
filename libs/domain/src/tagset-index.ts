/**
 * Which tag sets a poll may take from. A poll naming tags P may take a task whose tag
 * set S contains every tag of P. With an inverted index tag -> tag sets, the answer is
 * the intersection of the lists of P's tags, walked from the shortest list, so the
 * cost follows the number of matching tag sets, not the number of tag sets in all.
 */
export class TagsetIndex {
  private readonly tagsById = new Map<string, readonly string[]>();
  private readonly idsByTag = new Map<string, Set<string>>();

  /** Returns false when the tag set was already known. */
  add(id: string, tags: readonly string[]): boolean {
    if (this.tagsById.has(id)) return false;
    this.tagsById.set(id, [...tags]);
    for (const tag of tags) {
      let ids = this.idsByTag.get(tag);
      if (!ids) this.idsByTag.set(tag, (ids = new Set()));
      ids.add(id);
    }
    return true;
  }

  /** Forgets a tag set (its queue was closed). Returns false when it was not known. */
  remove(id: string): boolean {
    const tags = this.tagsById.get(id);
    if (!tags) return false;
    this.tagsById.delete(id);
    for (const tag of tags) {
      const ids = this.idsByTag.get(tag);
      ids?.delete(id);
      if (ids?.size === 0) this.idsByTag.delete(tag);
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

  matching(wanted: readonly string[]): string[] {
    if (wanted.length === 0) return [...this.tagsById.keys()];
    const lists: Set<string>[] = [];
    for (const tag of new Set(wanted)) {
      const ids = this.idsByTag.get(tag);
      if (!ids) return [];
      lists.push(ids);
    }
    lists.sort((a, b) => a.size - b.size);
    const [smallest, ...rest] = lists;
    const result: string[] = [];
    for (const id of smallest) if (rest.every((ids) => ids.has(id))) result.push(id);
    return result;
  }
}

/**
 * Parked polls by tag, so an announcement for a tag set looks only at the polls that
 * could take from it. A poll's tags must all be in the tag set, so the poll is filed
 * under one of them (the one with the fewest polls filed so far); a poll naming no tag
 * matches everything and is filed apart. Finding the polls for a tag set then costs the
 * polls filed under its tags, not every parked poll: 1,000 hosts each polling its own
 * tag cost one check per announcement instead of 1,000.
 */
export class PollIndex<T extends { tags: readonly string[] }> {
  private readonly byTag = new Map<string, Set<T>>();
  private readonly untagged = new Set<T>();
  private readonly filedUnder = new Map<T, string | null>();

  get size(): number {
    return this.filedUnder.size;
  }

  add(poll: T): void {
    if (this.filedUnder.has(poll)) return;
    let key: string | null = null;
    for (const tag of poll.tags) if (key === null || (this.byTag.get(tag)?.size ?? 0) < (this.byTag.get(key)?.size ?? 0)) key = tag;
    this.filedUnder.set(poll, key);
    if (key === null) {
      this.untagged.add(poll);
      return;
    }
    let set = this.byTag.get(key);
    if (!set) this.byTag.set(key, (set = new Set()));
    set.add(poll);
  }

  delete(poll: T): void {
    const key = this.filedUnder.get(poll);
    if (key === undefined) return;
    this.filedUnder.delete(poll);
    if (key === null) {
      this.untagged.delete(poll);
      return;
    }
    const set = this.byTag.get(key)!;
    set.delete(poll);
    if (set.size === 0) this.byTag.delete(key);
  }

  /** The polls that may take a task carrying `tags`. */
  matching(tags: readonly string[]): T[] {
    const have = new Set(tags);
    const out = [...this.untagged];
    for (const tag of have) {
      for (const poll of this.byTag.get(tag) ?? []) if (poll.tags.every((t) => have.has(t))) out.push(poll);
    }
    return out;
  }

  all(): IterableIterator<T> {
    return this.filedUnder.keys();
  }
}
