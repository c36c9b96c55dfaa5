import has from 'lodash/has.js';
import get from 'lodash/get.js';
import toPath from 'lodash/toPath.js';

/**
 * Input references: `{{ tasks.NAME.output.PATH }}`, `{{ workflow.input.PATH }}` and
 * `{{ data.KEY }}` anywhere in a task's input (nested objects and arrays too). Only
 * these three roots are references; any other `{{ ... }}` (a Jinja template for a
 * config tool, say) is left alone. PATH is a property path (`a.b[0]['c d']`), parsed
 * by lodash's toPath.
 */

export type Reference =
  | { kind: 'task'; task: string; path: string[]; text: string }
  | { kind: 'workflow'; path: string[]; text: string }
  | { kind: 'data'; key: string; text: string };

export const DATA_KEY_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
export const DATA_KEY_MAX_LENGTH = 128;

const TASK_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

export function parseReference(expr: string): Reference | null | { error: string } {
  const text = `{{ ${expr} }}`;
  const shown = text.length > 200 ? `${text.slice(0, 200)}…` : text; // for messages
  if (expr.startsWith('tasks.')) {
    const rest = expr.slice('tasks.'.length);
    const m = /\.output(?=$|[.[])/.exec(rest);
    if (!m) return { error: `${shown}: a task reference reads tasks.NAME.output[.PATH]` };
    const task = rest.slice(0, m.index);
    if (!TASK_NAME.test(task)) return { error: `${shown}: "${task.slice(0, 130)}" is not a task name` };
    const path = pathOf(rest.slice(m.index + '.output'.length));
    return 'error' in path ? { error: `${shown}: ${path.error}` } : { kind: 'task', task, path: path.parts, text };
  }
  if (expr === 'workflow.input' || expr.startsWith('workflow.input.') || expr.startsWith('workflow.input[')) {
    const path = pathOf(expr.slice('workflow.input'.length));
    return 'error' in path ? { error: `${shown}: ${path.error}` } : { kind: 'workflow', path: path.parts, text };
  }
  if (expr.startsWith('data.')) {
    const key = expr.slice('data.'.length);
    if (key.length > DATA_KEY_MAX_LENGTH || !DATA_KEY_PATTERN.test(key))
      return { error: `${shown}: "${key.slice(0, 130)}" is not a data key (dotted names of [A-Za-z0-9_-])` };
    return { kind: 'data', key, text };
  }
  return null;
}

function pathOf(rest: string): { parts: string[] } | { error: string } {
  if (rest === '') return { parts: [] };
  const trimmed = rest.startsWith('.') ? rest.slice(1) : rest;
  if (trimmed === '') return { error: 'the path is empty' };
  return { parts: toPath(trimmed) };
}

/** A `{{ ... }}` in a string: where it starts and ends, and the expression inside, trimmed. */
interface Template {
  start: number;
  end: number;
  expr: string;
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

function breaksTemplate(c: number): boolean {
  return c === OPEN_BRACE || c === CLOSE_BRACE || c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029;
}

/**
 * The `{{ EXPR }}` templates of a string, left to right: `{{`, then characters that are
 * not braces or line breaks, then `}}`. A scanner, not a pattern, so the time is linear
 * in the length of the string whatever it holds (a backtracking pattern took seconds on
 * `{{` followed by a few thousand spaces). Each character is looked at at most twice: a
 * template broken by a `{` is looked for again from that brace.
 */
function* templates(s: string): Generator<Template> {
  let from = 0;
  for (;;) {
    const start = s.indexOf('{{', from);
    if (start < 0) return;
    let k = start + 2;
    while (k < s.length && !breaksTemplate(s.charCodeAt(k))) k++;
    if (k + 1 < s.length && s.charCodeAt(k) === CLOSE_BRACE && s.charCodeAt(k + 1) === CLOSE_BRACE) {
      const expr = s.slice(start + 2, k).trim();
      if (expr) yield { start, end: k + 2, expr };
      from = k + 2;
    } else if (k < s.length && s.charCodeAt(k) === OPEN_BRACE) {
      from = s.charCodeAt(k - 1) === OPEN_BRACE ? k - 1 : k;
    } else {
      from = k + 1;
    }
    if (from >= s.length) return;
  }
}

/** Every reference in a JSON value, and the malformed ones. */
export function collectReferences(value: unknown): { refs: Reference[]; errors: string[] } {
  const refs: Reference[] = [];
  const errors: string[] = [];
  walkStrings(value, (s) => {
    for (const t of templates(s)) {
      const r = parseReference(t.expr);
      if (r === null) continue;
      if ('error' in r) errors.push(r.error);
      else refs.push(r);
    }
  });
  return { refs, errors };
}

export type Lookup = (ref: Reference) => { found: true; value: unknown } | { found: false; reason: string };

export class ResolutionError extends Error {
  readonly code = 'INPUT_RESOLUTION';
}

/**
 * Replaces references: a string that is exactly one reference becomes the referenced
 * JSON value; a reference inside a longer string becomes its text (strings as they are,
 * other values as JSON). A missing value throws ResolutionError naming the reference.
 */
export function resolveReferences<T>(value: T, lookup: Lookup): T {
  return mapStrings(value, (s) => {
    const found = [...templates(s)];
    if (found.length === 0) return s;
    if (found.length === 1 && found[0].start === 0 && found[0].end === s.length) {
      const r = parseReference(found[0].expr);
      if (r && !('error' in r)) return valueOf(r, lookup);
    }
    const parts: string[] = [];
    let at = 0;
    for (const t of found) {
      const r = parseReference(t.expr);
      if (r === null || 'error' in r) continue;
      const v = valueOf(r, lookup);
      parts.push(s.slice(at, t.start), typeof v === 'string' ? v : JSON.stringify(v));
      at = t.end;
    }
    parts.push(s.slice(at));
    return parts.join('');
  }) as T;
}

function valueOf(r: Reference, lookup: Lookup): unknown {
  const found = lookup(r);
  if (!found.found) throw new ResolutionError(`cannot resolve ${r.text}: ${found.reason}`);
  return found.value;
}

/** Reads a path inside a value, telling "missing" apart from null. */
export function readPath(
  root: unknown,
  path: readonly string[],
): { found: true; value: unknown } | { found: false; reason: string } {
  if (path.length === 0) return { found: true, value: root };
  if (root === null || typeof root !== 'object' || !has(root, path))
    return { found: false, reason: `no field ${path.join('.')}` };
  return { found: true, value: get(root, path) as unknown };
}

function walkStrings(value: unknown, visit: (s: string) => void): void {
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === 'string') visit(v);
    else if (Array.isArray(v)) stack.push(...(v as unknown[]));
    else if (v && typeof v === 'object') stack.push(...(Object.values(v) as unknown[]));
  }
}

function mapStrings(value: unknown, map: (s: string) => unknown): unknown {
  if (typeof value === 'string') return map(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, map));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, map)]));
  return value;
}
