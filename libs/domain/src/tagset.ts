import { createHash } from 'node:crypto';

/** Tags in canonical order without duplicates. */
export function canonicalTags(tags: readonly string[]): string[] {
  return [...new Set(tags)].sort();
}

/**
 * A stable id for a set of tags in a namespace: every task of that namespace with the
 * same tags shares one queue; two namespaces never share one.
 * Short enough for a Redis key, long enough that collisions do not happen in practice.
 */
export function tagsetId(tags: readonly string[], namespace = DEFAULT_NAMESPACE): string {
  const given = JSON.stringify([namespace, tags]);
  let id = knownTagsets.get(given);
  if (id === undefined) {
    // The default namespace keeps the ids of the tag sets recorded before namespaces existed.
    const key = namespace === DEFAULT_NAMESPACE ? canonicalTags(tags) : queueTags(namespace, tags);
    id = createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 24);
    if (knownTagsets.size >= KNOWN_TAGSETS) knownTagsets.clear();
    knownTagsets.set(given, id);
  }
  return id;
}

/**
 * Tag set ids already hashed, by namespace and tags as given: a submission of a thousand
 * tasks has a few sets, each hashed once instead of for every task (a hash cost about 1-10 µs).
 */
const knownTagsets = new Map<string, string>();
/** Ids kept at most; then the map starts again. */
const KNOWN_TAGSETS = 10_000;

/** The capability that fits every task (for credentials granted `*`). */
export const ANY_TAG = '*';

/**
 * Scope tags (`@ns:NAME`, added on the queue side) are not capabilities: a task's must be
 * among the poll's even for `*`, so a poll never reaches into another namespace.
 */
export function isScopeTag(tag: string): boolean {
  return tag.startsWith('@');
}

/**
 * A poll's tags are its worker's capabilities: it may take a task when every tag of the
 * task is among them (an untagged task fits any poll; `*` fits every task of the poll's
 * scope).
 */
export function tagsMatch(taskTags: readonly string[], pollTags: readonly string[]): boolean {
  const have = new Set(pollTags);
  const any = have.has(ANY_TAG);
  return taskTags.every((t) => have.has(t) || (any && !isScopeTag(t)));
}

/** Namespaces: `[a-z0-9-]`, at most 63 characters; `default` unless a key says otherwise. */
export const DEFAULT_NAMESPACE = 'default';
export const NAMESPACE_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The tag that puts a tag set in its namespace on the queue side. `@` is not allowed in
 * a task's tags, so this tag is never one a client wrote: a poll in namespace A names it
 * and so never matches a tag set of namespace B, whatever their other tags.
 */
export function namespaceTag(namespace: string): string {
  return `@ns:${namespace}`;
}

/** A task's tags as its queue knows them: its own and its namespace's. */
export function queueTags(namespace: string, tags: readonly string[]): string[] {
  return canonicalTags([...tags, namespaceTag(namespace)]);
}

/** The tags a client wrote, without the namespace tag. */
export function clientTags(tags: readonly string[]): string[] {
  return tags.filter((t) => !t.startsWith('@ns:'));
}

/**
 * Tags as the queue side knows them, whoever recorded or announced them: a tag set recorded
 * (or announced by a replica) from before namespaces existed gets the `default` namespace's tag.
 */
export function asQueueTags(tags: readonly string[]): string[] {
  return queueTags(namespaceOfTags(tags), clientTags(tags));
}

/** The namespace a queue tag set belongs to (a set recorded before namespaces existed is `default`'s). */
export function namespaceOfTags(tags: readonly string[]): string {
  const tag = tags.find((t) => t.startsWith('@ns:'));
  return tag ? tag.slice(4) : DEFAULT_NAMESPACE;
}
