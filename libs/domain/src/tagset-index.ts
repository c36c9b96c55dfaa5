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
