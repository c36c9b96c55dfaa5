import type { Workflow } from '@tagflow/client';
import { isoOrNull, TASK_STATES, type TaskState } from '@tagflow/domain';
import type { WorkflowEntity } from '@tagflow/persistence';
import { callbackView } from '../tasks/task.mapper.js';

export type TaskCounts = Record<TaskState, number>;

export function emptyCounts(): TaskCounts {
  return Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as TaskCounts;
}

export function toWorkflowResponse(w: WorkflowEntity, counts: TaskCounts): Workflow {
  return {
    id: w.id,
    name: w.name,
    namespace: w.namespace,
    description: w.description,
    tags: w.tags,
    input: w.input,
    state: w.state,
    sealed: w.sealed,
    on_failure: w.on_failure,
    retention_days: w.retention_days,
    limits: w.limits,
    callback: callbackView(w.callback),
    created_by: w.created_by,
    created_at: isoOrNull(w.created_at),
    updated_at: isoOrNull(w.updated_at),
    finished_at: isoOrNull(w.finished_at),
    task_counts: counts,
  };
}
