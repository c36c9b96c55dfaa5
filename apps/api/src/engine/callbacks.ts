import { isTerminalTask, newId } from '@tagflow/domain';
import { toTaskResponse } from '../tasks/task.mapper.js';
import { emptyCounts, toWorkflowResponse } from '../workflows/workflow.mapper.js';
import type { UnitOfWork } from './unit-of-work.js';

/**
 * The callbacks of what this operation finished, written to the outbox in its own
 * transaction (so a crash after the commit never loses one, and a rolled-back operation
 * announces nothing). The body is the task's or the workflow's JSON as the API shows it
 * at that moment; the dispatcher (callbacks/dispatcher.ts) sends it. One finish is
 * announced once: a task by (attempt, state, handled), a workflow by its finish time.
 */
export async function recordCallbacks(uow: UnitOfWork): Promise<void> {
  const { repos } = uow;
  const finished = uow.finishedWithCallbacks();
  if (finished.length > 0) {
    for (const t of await repos.tasks.withCallbacks(finished)) {
      if (!isTerminalTask(t.state) || !t.callback) continue;
      await repos.callbacks.enqueue(
        {
          id: newId(uow.now),
          dedupe_key: `task:${t.id}:${t.attempt}:${t.state}:${t.handled ? 'handled' : '-'}`,
          namespace: t.namespace,
          workflow_id: t.workflow_id,
          task_id: t.id,
          event: 'task.finished',
          url: t.callback.url,
          secret: t.callback.secret ?? null,
          body: JSON.stringify(toTaskResponse(t)),
        },
        uow.now,
      );
    }
  }
  for (const e of uow.effects) {
    if (e.kind !== 'workflow-finished') continue;
    const wf = await repos.workflows.get(e.workflowId);
    if (!wf?.callback || wf.finished_at === null) continue;
    const counts = { ...emptyCounts(), ...(await repos.tasks.countsByState([wf.id])).get(wf.id) };
    await repos.callbacks.enqueue(
      {
        id: newId(uow.now),
        dedupe_key: `workflow:${wf.id}:${wf.finished_at}`,
        namespace: wf.namespace,
        workflow_id: wf.id,
        task_id: null,
        event: 'workflow.finished',
        url: wf.callback.url,
        secret: wf.callback.secret ?? null,
        body: JSON.stringify(toWorkflowResponse(wf, counts)),
      },
      uow.now,
    );
  }
}
