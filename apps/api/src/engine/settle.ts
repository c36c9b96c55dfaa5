import { checkWorkflow } from './completion.js';
import { failedForGood, handlerSettled } from './failure.js';
import { dataWritten, evaluate, evaluateIds, release } from './readiness.js';
import type { Fact, UnitOfWork } from './unit-of-work.js';

/**
 * The settle loop. A state change records what follows from it as a fact; this loop
 * applies the facts in the order they were recorded, each of which may record more.
 * Only when none is left are the workflow-wide questions asked (done? deadlocked? roll
 * back?), once per workflow the operation touched; what they change records facts in
 * turn, and the loop goes on until a pass records nothing.
 */
export async function settle(uow: UnitOfWork): Promise<void> {
  for (;;) {
    for (let fact = uow.next(); fact; fact = uow.next()) await apply(uow, fact);
    const touched = uow.takeTouched();
    if (touched.length === 0) return;
    for (const wf of touched) {
      // Evaluations left for later (EngineSettings): the workflow is marked, and its walk
      // through the waiting tasks starts again from the first, whatever replica walks it
      // and however far it had come, so the mark goes only after a whole walk begun after
      // this release (readiness.ts continueSettling). Until then it is not done nor stuck.
      if (uow.isDeferred(wf.id) && !(wf.settle_pending && wf.settle_after === ''))
        await uow.repos.workflows.setSettle(wf, true, '');
      if (!wf.settle_pending) await checkWorkflow(uow, wf);
    }
  }
}

async function apply(uow: UnitOfWork, fact: Fact): Promise<void> {
  switch (fact.kind) {
    case 'evaluate':
      return evaluate(uow, fact.wf, fact.tasks);
    case 'evaluate-ids':
      return evaluateIds(uow, fact.wf, fact.ids);
    case 'data-written':
      return dataWritten(uow, fact.wf, fact.key);
    case 'failed-for-good':
      return failedForGood(uow, fact.wf, fact.task);
    case 'settled':
      for (const t of fact.tasks)
        if (t.kind === 'handler' && t.parent_task_id) await handlerSettled(uow, fact.wf, t.parent_task_id);
      return release(uow, fact.wf, fact.tasks);
  }
}
