import type { Task, TaskState } from '@tagflow/client';
import { groupIdOf, namePattern } from '../graph/model';

/** What the Tasks tab shows; the graph hands a group over as one. */
export interface TaskFilter {
  /** Part of the name; `#` stands for a number (the graph's name patterns). */
  name: string;
  state: TaskState | '';
  tag: string;
  /** A group of the graph (its id): its tasks only. */
  group?: string;
}

export function filterForGroup(groupId: string): TaskFilter {
  return { name: '', state: '', tag: '', group: groupId };
}

/**
 * Whether a task passes the filter. A name with `#` matches names with a number in its
 * place (and the graph's pattern of them); any other name, part of a task's name.
 */
export function matcher(f: TaskFilter): (t: Task) => boolean {
  const name = f.name.trim();
  const pattern = name.includes('#')
    ? new RegExp(
        `^${name
          .split('#')
          .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
          .join('\\d+')}$`,
      )
    : null;
  return (t) =>
    (!f.group || groupIdOf(t, f.group) === f.group) &&
    (!f.state || t.state === f.state) &&
    (!f.tag || t.tags.includes(f.tag.trim())) &&
    (!name || (pattern ? pattern.test(t.name) || namePattern(t.name) === name : t.name.includes(name)));
}
