import { createHash } from 'node:crypto';

/** Tags in canonical order without duplicates. */
export function canonicalTags(tags: readonly string[]): string[] {
  return [...new Set(tags)].sort();
}

/**
 * A stable id for a set of tags: every task with the same tags shares one queue.
 * Short enough for a Redis key, long enough that collisions do not happen in practice.
 */
export function tagsetId(tags: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify(canonicalTags(tags))).digest('hex').slice(0, 24);
}

/** A poll naming `wanted` may take a task carrying `taskTags` only if it carries every wanted tag. */
export function tagsMatch(taskTags: readonly string[], wanted: readonly string[]): boolean {
  if (wanted.length === 0) return true;
  const have = new Set(taskTags);
  return wanted.every((t) => have.has(t));
}
