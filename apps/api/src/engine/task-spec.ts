import { randomUUID } from 'node:crypto';
import {
  canonicalTags,
  collectReferences,
  LIMITS,
  newId,
  normalizeRetry,
  tagsetId,
  type RetryPolicy,
} from '@tagflow/domain';
import type {
  ActionSpec,
  CallbackTarget,
  CreatedBy,
  JsonObject,
  TaskEntity,
  TaskKind,
  WorkflowEntity,
} from '@tagflow/persistence';

/** A task as the engine adds it: every default filled in. */
export interface NewTask {
  name: string;
  tags: string[];
  action: ActionSpec;
  input: JsonObject;
  requires: string[];
  requires_tags: string[];
  retry: RetryPolicy;
  timeout_s: number | null;
  lease_s: number;
  on_error: { codes?: string[]; run: JsonObject[] }[];
  revert: ActionSpec | null;
  produces: string[];
  /** Data keys its input reads: it waits until each is written. */
  data_requires: string[];
  /** Malformed references in its input (refused at submission). */
  referenceErrors: string[];
  /** Not READY before this time (epoch ms). */
  not_before: number | null;
  priority: number;
  callback: CallbackTarget | null;
}

/** The client-facing shape (a validated TaskSpecDto, or a handler spec stored in on_error). */
export interface TaskSpecLike {
  name?: string;
  tags?: string[];
  action: ActionSpec;
  input?: JsonObject;
  requires?: string[];
  requires_tags?: string[];
  retry?: Partial<RetryPolicy>;
  timeout_s?: number;
  lease_s?: number;
  on_error?: { codes?: string[]; run: TaskSpecLike[] }[];
  revert?: ActionSpec;
  produces?: string[];
  /** ISO 8601 with a zone (a stored task's, when changed in place: epoch ms). */
  not_before?: string | number | null;
  priority?: number;
  callback?: CallbackTarget | null;
}

/**
 * Fills in defaults. References in the input add dependencies: `{{ tasks.NAME... }}`
 * requires NAME, `{{ data.KEY }}` waits for KEY.
 */
export function normalizeSpec(spec: TaskSpecLike): NewTask {
  const input = spec.input ?? {};
  const { refs, errors } = collectReferences(input);
  const referenced = refs.flatMap((r) => (r.kind === 'task' ? [r.task] : []));
  const dataKeys = refs.flatMap((r) => (r.kind === 'data' ? [r.key] : []));
  return {
    name: spec.name ?? generatedName(spec.action.type),
    tags: canonicalTags(spec.tags ?? []),
    action: { ...spec.action },
    input,
    requires: [...new Set([...(spec.requires ?? []), ...referenced])],
    produces: [...new Set(spec.produces ?? [])].sort(),
    data_requires: [...new Set(dataKeys)].sort(),
    referenceErrors: errors,
    requires_tags: canonicalTags(spec.requires_tags ?? []),
    retry: normalizeRetry(spec.retry),
    timeout_s: spec.timeout_s ?? null,
    lease_s: spec.lease_s ?? LIMITS.defaultLeaseSeconds,
    // Handler specs are kept as plain JSON (class instances would not survive the column).
    on_error: (spec.on_error ?? []).map((e) => ({
      ...(e.codes ? { codes: [...e.codes] } : {}),
      run: e.run.map((r) => toPlain(r)),
    })),
    revert: spec.revert ? { ...spec.revert } : null,
    not_before: typeof spec.not_before === 'string' ? Date.parse(spec.not_before) : (spec.not_before ?? null),
    priority: spec.priority ?? 0,
    callback: spec.callback
      ? { url: spec.callback.url, ...(spec.callback.secret ? { secret: spec.callback.secret } : {}) }
      : null,
  };
}

function toPlain(value: unknown): JsonObject {
  return JSON.parse(JSON.stringify(value)) as JsonObject;
}

function generatedName(actionType: string): string {
  const base = actionType.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 100);
  return `${base}-${randomUUID().slice(0, 8)}`;
}

/**
 * The tags a task and its on_error handlers (nested ones included) would run on, '' for an
 * untagged one (it runs on any worker). A revert runs on its task's own tags.
 */
export function runTags(task: Pick<NewTask, 'tags' | 'on_error'>): string[] {
  const out = task.tags.length > 0 ? [...task.tags] : [''];
  const visit = (onError: readonly { run: readonly JsonObject[] }[]) => {
    for (const entry of onError) {
      for (const spec of entry.run) {
        const tags = Array.isArray(spec.tags) ? spec.tags.map(String) : [];
        out.push(...(tags.length > 0 ? tags : ['']));
        if (Array.isArray(spec.on_error)) visit(spec.on_error);
      }
    }
  };
  visit(task.on_error);
  return out;
}

/** Names every on_error handler of the task would take. */
export function handlerNames(task: Pick<NewTask, 'on_error'>): string[] {
  const names = new Set<string>();
  for (const entry of task.on_error) for (const run of entry.run) if (typeof run.name === 'string') names.add(run.name);
  return [...names];
}

export function buildTaskEntity(
  wf: Pick<WorkflowEntity, 'id' | 'namespace'>,
  t: NewTask,
  kind: TaskKind,
  parentId: string | null,
  now: number,
  createdBy: CreatedBy | null,
): TaskEntity {
  return {
    id: newId(now),
    workflow_id: wf.id,
    namespace: wf.namespace,
    name: t.name,
    kind,
    parent_task_id: parentId,
    tags: t.tags,
    tagset_id: tagsetId(t.tags, wf.namespace),
    action: t.action,
    input: t.input,
    requires: t.requires,
    requires_tags: t.requires_tags,
    produces: t.produces,
    data_requires: t.data_requires,
    retry: t.retry,
    timeout_s: t.timeout_s,
    lease_s: t.lease_s,
    on_error: t.on_error,
    revert: t.revert,
    state: 'WAITING',
    attempt: 1,
    handbacks: 0,
    handled: false,
    handling: false,
    cancel_requested: false,
    resolved_input: null,
    output: null,
    error: null,
    stdout: null,
    stderr: null,
    exit_code: null,
    progress: null,
    worker_id: null,
    lease_token: null,
    lease_expires_at: null,
    deadline_at: null,
    lease_outcome: null,
    created_by: createdBy,
    created_at: now,
    updated_at: now,
    ready_at: null,
    not_before: t.not_before,
    wake_at: null,
    priority: t.priority,
    held_limit: null,
    callback: t.callback,
    started_at: null,
    finished_at: null,
  };
}
