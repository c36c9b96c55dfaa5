import { canonicalTags, collectReferences, describeCycle, findCycle, type GraphTask } from '@tagflow/domain';
import type { FieldError } from './validators.js';

/** A task of a new workflow as written (fields of the wrong type are another check's business: skipped here). */
export interface WrittenTask {
  name?: unknown;
  tags?: unknown;
  input?: unknown;
  requires?: unknown;
  requires_tags?: unknown;
  produces?: unknown;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/**
 * What the API checks about a new workflow's tasks as a whole, without its database: names
 * unique, references well formed, `requires` (and task references) naming tasks of the
 * workflow, no key under `tasks.` produced, no dependency cycle. Built on the domain's own
 * rules (reference parsing, cycle search), so a file checked here gets the API's answer
 * before it is sent, with the field that is wrong (`tasks.2.requires.0`). Handler-name clashes
 * are left to the API.
 */
export function checkWorkflowTasks(written: readonly unknown[]): FieldError[] {
  const tasks = written.map((w) => {
    const t = (typeof w === 'object' && w !== null ? w : {}) as WrittenTask;
    return {
      name: typeof t.name === 'string' ? t.name : undefined,
      tags: strings(t.tags),
      input: typeof t.input === 'object' && t.input !== null ? t.input : {},
      requires: strings(t.requires),
      requires_tags: strings(t.requires_tags),
      produces: strings(t.produces),
    };
  });
  const problems: FieldError[] = [];
  const index = new Map<string, number>();
  tasks.forEach((t, i) => {
    if (t.name === undefined) return;
    const first = index.get(t.name);
    if (first !== undefined)
      problems.push({ field: `tasks.${i}.name`, errors: [`"${t.name}" is also the name of tasks.${first}`] });
    else index.set(t.name, i);
  });
  const graph: GraphTask[] = [];
  tasks.forEach((t, i) => {
    const { refs, errors } = collectReferences(t.input);
    for (const e of errors) problems.push({ field: `tasks.${i}.input`, errors: [`malformed reference: ${e}`] });
    t.requires.forEach((r, j) => {
      if (r === t.name) problems.push({ field: `tasks.${i}.requires.${j}`, errors: [`${r} requires itself`] });
      else if (!index.has(r))
        problems.push({ field: `tasks.${i}.requires.${j}`, errors: [`no task of this workflow is named ${r}`] });
    });
    const referenced = [...new Set(refs.flatMap((r) => (r.kind === 'task' ? [r.task] : [])))];
    for (const r of referenced) {
      if (!index.has(r))
        problems.push({
          field: `tasks.${i}.input`,
          errors: [`{{ tasks.${r}.output }}: no task of this workflow is named ${r}`],
        });
    }
    t.produces.forEach((k, j) => {
      if (k.startsWith('tasks.'))
        problems.push({
          field: `tasks.${i}.produces.${j}`,
          errors: [`keys under "tasks." are task outputs: ${k} cannot be produced`],
        });
    });
    if (t.name !== undefined) {
      graph.push({
        name: t.name,
        tags: canonicalTags(t.tags),
        requires: [...new Set([...t.requires, ...referenced])].filter((r) => r !== t.name && index.has(r)),
        requires_tags: canonicalTags(t.requires_tags),
        data_requires: [...new Set(refs.flatMap((r) => (r.kind === 'data' ? [r.key] : [])))],
        produces: t.produces,
        waiting: true,
      });
    }
  });
  const cycle = findCycle(graph);
  if (cycle) {
    // Told from the first task on it (a step may be a tag selector or a data key).
    const at = cycle.find((n) => index.has(n));
    const i = at === undefined ? 0 : index.get(at)!;
    const start = cycle.indexOf(at ?? cycle[0]);
    const ring = cycle.slice(0, -1);
    const told = [...ring.slice(start), ...ring.slice(0, start), ring[start]];
    const field = tasks[i]?.requires.length
      ? `tasks.${i}.requires`
      : tasks[i]?.requires_tags.length
        ? `tasks.${i}.requires_tags`
        : `tasks.${i}.name`;
    problems.push({ field, errors: [describeCycle(told)] });
  }
  return problems;
}
