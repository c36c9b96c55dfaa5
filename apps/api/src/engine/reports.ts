import { readPath } from '@tagflow/domain';
import type { JsonObject, TaskEntity, WorkflowEntity } from '@tagflow/persistence';
import { reportSet, type ReportFields } from './report-fields.js';
import type { UnitOfWork } from './unit-of-work.js';

export interface Completion {
  wf: WorkflowEntity;
  task: TaskEntity;
  output: JsonObject;
  report: ReportFields;
}

/**
 * RUNNING -> SUCCESS for a batch of reports checked under their workflows' locks (one
 * statement for all); what each output declares in `produces` goes to the data space.
 * The task objects follow their rows; the settle loop then releases their dependents,
 * once per workflow for all its tasks of the batch.
 */
export async function markCompleted(uow: UnitOfWork, completions: readonly Completion[]): Promise<void> {
  const items = completions.map(({ task, output, report }) => ({
    task,
    set: { output, ...reportSet(report), lease_outcome: 'complete' as const, error: null },
  }));
  await uow.repos.transitions.each('RUNNING', 'SUCCESS', items, 'completed');
  const byWorkflow = new Map<string, { wf: WorkflowEntity; tasks: TaskEntity[] }>();
  for (const { wf, task, output } of completions) {
    uow.leaseEnded(task);
    // A declared key found in the output (at that path) is written to the data space.
    for (const key of task.produces) {
      const found = readPath(output, key.split('.'));
      if (found.found) await writeData(uow, wf, key, found.value, task.id);
    }
    uow.dataWritten(wf.id, `tasks.${task.name}.output`);
    const group = byWorkflow.get(wf.id) ?? byWorkflow.set(wf.id, { wf, tasks: [] }).get(wf.id)!;
    group.tasks.push(task);
  }
  for (const { wf, tasks } of byWorkflow.values()) uow.record({ kind: 'settled', wf, tasks });
}

/** Writes a data key (never blocks): the tasks reading it are evaluated, and blocked reads anywhere woken after commit. */
export async function writeData(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  key: string,
  value: unknown,
  taskId: string | null,
): Promise<void> {
  await uow.repos.data.write(wf.id, key, value, taskId, uow.now);
  uow.dataWritten(wf.id, key);
  uow.record({ kind: 'data-written', wf, key });
}
