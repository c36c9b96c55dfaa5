import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { WorkflowSpec } from '@tagflow/client';

/** One thing wrong with a workflow file, where it is. */
export interface FileProblem {
  file: string;
  line: number;
  column: number;
  field?: string;
  message: string;
}

export class WorkflowFileError extends Error {
  constructor(readonly problems: FileProblem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

export function formatProblem(p: FileProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

/**
 * A workflow file: YAML (JSON is YAML too) with the fields of `POST /v1/workflows`, checked
 * with the API's own rules before anything is sent, each problem reported with its line and
 * column. `--set key=value` fills `input` (a value is read as YAML: `3`, `true`, `[a, b]`).
 * Then what the API checks about the tasks together (unique names, `requires` naming tasks of
 * the file, references, cycles), so those errors have a line too.
 */
export async function loadWorkflowFile(file: string, sets: readonly string[] = []): Promise<WorkflowSpec> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new WorkflowFileError([{ file, line: 1, column: 1, message: `cannot read it: ${(e as Error).message}` }]);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  const at = (offset: number) => lines.linePos(offset);
  if (doc.errors.length > 0) {
    throw new WorkflowFileError(
      doc.errors.map((e) => {
        const p = at(e.pos[0]);
        return { file, line: p.line, column: p.col, message: e.message.split('\n')[0] };
      }),
    );
  }
  const spec = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new WorkflowFileError([
      { file, line: 1, column: 1, message: 'a workflow file is a mapping with at least "name" (and usually "tasks")' },
    ]);
  }
  const workflow = spec as Record<string, unknown>;
  for (const set of sets) {
    const eq = set.indexOf('=');
    if (eq <= 0)
      throw new WorkflowFileError([{ file: '--set', line: 1, column: 1, message: `"${set}" is not key=value` }]);
    const input = (
      typeof workflow.input === 'object' && workflow.input !== null && !Array.isArray(workflow.input)
        ? workflow.input
        : {}
    ) as Record<string, unknown>;
    const value = parseDocument(set.slice(eq + 1), { prettyErrors: false });
    if (value.errors.length > 0)
      throw new WorkflowFileError([
        {
          file: '--set',
          line: 1,
          column: eq + 2,
          message: `the value of ${set.slice(0, eq)} is not valid YAML (quote it to keep it a string: ${set.slice(0, eq)}='"..."'): ${value.errors[0].message}`,
        },
      ]);
    input[set.slice(0, eq)] = value.toJS() as unknown;
    workflow.input = input;
  }
  // The API's own rules, loaded only by the commands that read a file (class-validator is
  // most of the CLI's start-up time).
  const { checkWorkflowTasks, CreateWorkflowDto, validateAs } = await import('@tagflow/spec');
  const { errors } = await validateAs(CreateWorkflowDto, workflow, 'the file');
  const together = checkWorkflowTasks(Array.isArray(workflow.tasks) ? (workflow.tasks as unknown[]) : []);
  const problems: FileProblem[] = [...errors, ...together].map((e) => ({
    file,
    ...where(doc, lines, e.field),
    field: e.field,
    message: e.errors.join('; '),
  }));
  if (problems.length > 0) throw new WorkflowFileError(problems.sort((a, b) => a.line - b.line || a.column - b.column));
  return workflow as unknown as WorkflowSpec;
}

/** The line and column of a field path (`tasks.2.retry.count`): the deepest node of it the file has. */
function where(doc: Document, lines: LineCounter, field: string): { line: number; column: number } {
  const path = field.split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  let node: unknown = doc.contents;
  let offset = 0;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && it.key.value === key);
      if (!pair) break;
      offset = (pair.key as { range?: [number, number, number] }).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number' && node.items[key] !== undefined) {
      node = node.items[key];
      offset = (node as { range?: [number, number, number] }).range?.[0] ?? offset;
    } else {
      break;
    }
  }
  const pos = lines.linePos(offset);
  return { line: pos.line, column: pos.col };
}
