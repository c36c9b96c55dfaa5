import type { Task } from '@tagflow/client';
import { isoOrNull } from '@tagflow/domain';
import type { CallbackTarget, TaskEntity } from '@tagflow/persistence';

/** The wire form of a task. Internal bookkeeping (lease token, tag set id) stays inside. */
export function toTaskResponse(t: TaskEntity): Task {
  return {
    id: t.id,
    workflow_id: t.workflow_id,
    namespace: t.namespace,
    name: t.name,
    kind: t.kind,
    parent_task_id: t.parent_task_id,
    tags: t.tags,
    action: t.action,
    input: t.input,
    resolved_input: t.resolved_input,
    requires: t.requires,
    requires_tags: t.requires_tags,
    produces: t.produces,
    retry: { ...t.retry, max_delay_s: t.retry.max_delay_s },
    timeout_s: t.timeout_s,
    lease_s: t.lease_s,
    on_error: withoutSecrets(t.on_error),
    revert: t.revert,
    state: t.state,
    attempt: t.attempt,
    handled: t.handled,
    cancel_requested: t.cancel_requested,
    output: t.output,
    error: t.error,
    stdout: t.stdout,
    stderr: t.stderr,
    exit_code: t.exit_code,
    progress: (t.progress ?? null) as unknown,
    worker_id: t.worker_id,
    created_by: t.created_by,
    lease_expires_at: t.state === 'RUNNING' ? isoOrNull(t.lease_expires_at) : null,
    created_at: isoOrNull(t.created_at),
    updated_at: isoOrNull(t.updated_at),
    ready_at: isoOrNull(t.ready_at),
    not_before: isoOrNull(t.not_before),
    priority: t.priority,
    held_by_limit: t.state === 'READY' ? heldBy(t.held_limit) : null,
    callback: callbackView(t.callback),
    started_at: isoOrNull(t.started_at),
    finished_at: isoOrNull(t.finished_at),
  };
}

export type TaskResponse = Task;

/** `held_limit` (`<workflow id or ''>|<tag>`) as clients see it. */
function heldBy(held: string | null): Task['held_by_limit'] {
  if (!held) return null;
  const at = held.indexOf('|');
  return { tag: held.slice(at + 1), scope: at === 0 ? 'namespace' : 'workflow' };
}

/** A callback as clients see it: the URL and whether it is signed; the secret never leaves the API. */
export function callbackView(c: CallbackTarget | null): { url: string; signed: boolean } | null {
  return c ? { url: c.url, signed: Boolean(c.secret) } : null;
}

/**
 * A stored spec as clients see it: every `callback` at any depth (a handler's in `on_error`,
 * a schedule's workflow and its tasks) shown as `{url, signed}`, never with its secret.
 */
export function withoutSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => withoutSecrets(v)) as T;
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k,
      k === 'callback' && typeof v === 'object' && v !== null && 'url' in v
        ? callbackView(v as CallbackTarget)
        : withoutSecrets(v),
    ]),
  ) as T;
}
