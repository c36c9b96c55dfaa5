import { canonicalTags, describeCycle, findCycle, isTerminalWorkflow, tagsetId, type GraphTask } from '@tagflow/domain';
import type { CreatedBy, TaskEntity, TaskKind, WorkflowEntity } from '@tagflow/persistence';
import { conflict, unprocessable } from '../common/errors.js';
import { buildTaskEntity, handlerNames, normalizeSpec, runTags, type NewTask, type TaskSpecLike } from './task-spec.js';
import type { UnitOfWork } from './unit-of-work.js';

export interface AddOptions {
  kind: TaskKind;
  parentId?: string | null;
  /** Handlers and reverts are added by the engine to sealed workflows. */
  engineAdded?: boolean;
  /** The workflow is being created with these tasks: its seal applies after them. */
  creating?: boolean;
  /** The key whose request adds them. */
  createdBy?: CreatedBy | null;
}

/**
 * Adds tasks to a workflow, all or none: every check runs before anything is written,
 * then the rows go in WAITING and are left for the settle loop to evaluate. The returned
 * objects follow their rows through that evaluation (READY in place). Each task's history
 * starts with its arrival (none -> WAITING, "added"), so a follower of the workflow's
 * events sees a task come even while it waits.
 */
export async function addTasks(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  specs: readonly TaskSpecLike[],
  opts: AddOptions,
): Promise<TaskEntity[]> {
  if (!opts.engineAdded && !opts.creating) await checkOpen(uow, wf);
  const tasks = specs.map(normalizeSpec);
  await checkSubmission(uow, wf, tasks, { parentId: opts.parentId ?? null, engineAdded: opts.engineAdded });
  const rows = tasks.map((t) =>
    buildTaskEntity(wf, t, opts.kind, opts.parentId ?? null, uow.now, opts.createdBy ?? null),
  );
  await uow.repos.tasks.insert(rows);
  await uow.repos.workflows.addRunTags(wf.id, tasks.flatMap(runTags));
  await uow.repos.deps.insertFor(rows, tasks.map(handlerNames));
  await uow.repos.events.addTaskEvents(
    rows.map((t) => ({
      task_id: t.id,
      workflow_id: t.workflow_id,
      from_state: null,
      to_state: 'WAITING',
      attempt: t.attempt,
      reason: 'added',
      at: uow.now,
    })),
  );
  uow.record({ kind: 'evaluate', wf, tasks: rows });
  return rows;
}

/** The fields of a TaskSpec that a PATCH may change. */
export type TaskPatch = Partial<Omit<TaskSpecLike, 'name'>>;

/**
 * Changes a WAITING or READY task in place (a READY one waits again), under the same
 * checks as a submission; it and the tasks that select its old or new tags are evaluated again.
 */
export async function patchTask(uow: UnitOfWork, wf: WorkflowEntity, t: TaskEntity, patch: TaskPatch): Promise<void> {
  if (t.state !== 'WAITING' && t.state !== 'READY')
    throw conflict(`task ${t.id} is ${t.state}; only a WAITING or READY task can be changed`, { state: t.state });
  if (isTerminalWorkflow(wf.state)) throw conflict(`workflow ${wf.id} is ${wf.state}`, { state: wf.state });
  const merged = normalizeSpec({
    name: t.name,
    tags: patch.tags ?? t.tags,
    action: patch.action ?? t.action,
    input: patch.input ?? t.input,
    requires: patch.requires ?? t.requires,
    requires_tags: patch.requires_tags ?? t.requires_tags,
    retry: patch.retry ?? t.retry,
    timeout_s: patch.timeout_s ?? t.timeout_s ?? undefined,
    lease_s: patch.lease_s ?? t.lease_s,
    on_error: patch.on_error ?? (t.on_error as unknown as TaskSpecLike['on_error']),
    revert: patch.revert ?? t.revert ?? undefined,
    produces: patch.produces ?? t.produces,
    not_before: patch.not_before === undefined ? t.not_before : patch.not_before,
    callback: patch.callback === undefined ? t.callback : patch.callback,
    priority: patch.priority ?? t.priority,
  });
  await checkSubmission(uow, wf, [merged], { parentId: t.parent_task_id, replacing: t });
  const { repos } = uow;
  if (t.state === 'READY')
    await repos.transitions.tasks({ ids: [t.id], from: ['READY'], to: 'WAITING', reason: 'changed before it ran' });
  const tags = canonicalTags(merged.tags);
  // As it was: tasks that selected its old tags, or read a key it no longer produces, are evaluated again.
  const before = { name: t.name, tags: t.tags, produces: t.produces };
  const fields = {
    tags,
    tagset_id: tagsetId(tags, t.namespace),
    action: merged.action,
    input: merged.input,
    requires: merged.requires,
    requires_tags: merged.requires_tags,
    retry: merged.retry,
    timeout_s: merged.timeout_s,
    lease_s: merged.lease_s,
    on_error: merged.on_error,
    revert: merged.revert,
    produces: merged.produces,
    data_requires: merged.data_requires,
    not_before: merged.not_before,
    wake_at: null,
    priority: merged.priority,
    callback: merged.callback,
  };
  await repos.tasks.updateSpec(t.id, fields, uow.now);
  await repos.workflows.addRunTags(wf.id, runTags(merged));
  Object.assign(t, fields, { state: 'WAITING', updated_at: uow.now });
  await repos.deps.replaceFor(t, handlerNames(merged));
  // Its tags may have changed: tasks selecting either the old or the new tags see a new membership.
  const dependents = await repos.deps.dependentsOf(wf.id, [t, before]);
  uow.record({ kind: 'evaluate', wf, tasks: [t] });
  uow.record({ kind: 'evaluate-ids', wf, ids: dependents.filter((id) => id !== t.id) });
}

/** 409 unless tasks may be added to the workflow by a request. */
async function checkOpen(uow: UnitOfWork, wf: WorkflowEntity): Promise<void> {
  if (isTerminalWorkflow(wf.state)) throw conflict(`workflow ${wf.id} is ${wf.state}: no tasks can be added`);
  if (wf.sealed) throw conflict(`workflow ${wf.id} is sealed: no tasks can be added`);
  if (wf.on_failure === 'rollback' && (await uow.repos.tasks.anyUnhandledFailure(wf.id))) {
    throw conflict(`workflow ${wf.id} is rolling back after a failure: no tasks can be added`, { state: wf.state });
  }
}

/**
 * Names, references, handler names and cycles of new tasks (or of one task changed in
 * place: `replacing`); throws 422 naming the offender, before anything is written.
 */
async function checkSubmission(
  uow: UnitOfWork,
  wf: WorkflowEntity,
  tasks: NewTask[],
  opts: { parentId: string | null; replacing?: TaskEntity; engineAdded?: boolean },
): Promise<void> {
  const { repos } = uow;
  const batch = new Set<string>();
  for (const t of tasks) {
    if (batch.has(t.name))
      throw unprocessable(`duplicate task name ${t.name} in the request`, [
        { field: 'name', errors: [`duplicate: ${t.name}`] },
      ]);
    batch.add(t.name);
  }
  for (const t of tasks) checkReferences(t);
  const names = [...batch];
  if (!opts.replacing) {
    const taken = await repos.tasks.existingNames(wf.id, names);
    for (const name of names) {
      if (taken.has(name))
        throw unprocessable(`task name ${name} is already used in workflow ${wf.id}`, [
          { field: 'name', errors: [`already used: ${name}`] },
        ]);
    }
    for (const r of await repos.deps.reserved(wf.id, names)) {
      if (r.owner_task_id !== opts.parentId) {
        throw unprocessable(`task name ${r.name} is reserved for an on_error handler of task ${r.owner_task_id}`, [
          { field: 'name', errors: [`reserved: ${r.name}`] },
        ]);
      }
    }
  }

  // Handler names: unique against every task and every other task's handlers.
  const handlerOwner = new Map<string, string>();
  for (const t of tasks) {
    for (const h of handlerNames(t)) {
      if (batch.has(h))
        throw unprocessable(`on_error handler name ${h} of task ${t.name} clashes with a task of the same name`);
      const other = handlerOwner.get(h);
      if (other && other !== t.name)
        throw unprocessable(`on_error handler name ${h} is used by tasks ${other} and ${t.name}`);
      handlerOwner.set(h, t.name);
    }
  }
  if (handlerOwner.size > 0) {
    const hNames = [...handlerOwner.keys()];
    const clash = [...(await repos.tasks.existingNames(wf.id, hNames))][0];
    if (clash)
      throw unprocessable(
        `on_error handler name ${clash} of task ${handlerOwner.get(clash)} clashes with an existing task`,
      );
    const other = (await repos.deps.reserved(wf.id, hNames)).find((r) => r.owner_task_id !== opts.replacing?.id);
    if (other)
      throw unprocessable(`on_error handler name ${other.name} is already reserved by task ${other.owner_task_id}`);
  }

  // References by name must point at a task of the workflow (or of this batch); handlers'
  // too, looked up in the same query.
  const handlerRequires = tasks.flatMap((t) =>
    t.on_error.flatMap((e) => e.run.flatMap((r) => (r.requires as string[] | undefined) ?? [])),
  );
  const referenced = new Set([...tasks.flatMap((t) => t.requires), ...handlerRequires]);
  const known = new Set([...batch, ...(await repos.tasks.existingNames(wf.id, [...referenced]))]);
  for (const t of tasks) {
    for (const r of t.requires) {
      if (r === t.name)
        throw unprocessable(describeCycle([t.name, t.name]), [
          { field: 'requires', errors: [`${t.name} requires itself`] },
        ]);
      if (!known.has(r))
        throw unprocessable(`task ${t.name} requires unknown task ${r}`, [
          { field: 'requires', errors: [`unknown task: ${r}`] },
        ]);
    }
    for (const entry of t.on_error) {
      const local = new Set(entry.run.map((r) => r.name as unknown).filter((n): n is string => typeof n === 'string'));
      for (const run of entry.run) {
        for (const r of (run.requires as string[] | undefined) ?? []) {
          if (!local.has(r) && !known.has(r))
            throw unprocessable(`on_error handler of task ${t.name} requires unknown task ${r}`);
        }
      }
    }
  }

  // A cycle through a new task must come back into the batch from an existing task, and
  // existing tasks can only reach new ones by selecting their tags or reading keys they
  // produce (names they require existed before). If none does, the batch alone decides.
  // A task changed in place keeps its name, so tasks requiring it reach it: read the graph.
  // Tasks a rerun would make wait again count (mayWaitAgain): the rerun would close the cycle.
  // Not for the handlers and reverts the engine adds: refusing them would fail the failure or
  // the report that adds them, and their cycle could close only on a rerun, as before.
  const orAgain = !opts.engineAdded;
  const reachable =
    opts.replacing !== undefined ||
    (await repos.deps.anyWaitingFor(
      wf.id,
      [...new Set(tasks.flatMap((t) => t.tags))],
      [...new Set(tasks.flatMap((t) => t.produces))],
      orAgain,
    ));
  const graph: GraphTask[] = reachable
    ? (await repos.tasks.graph(wf.id, orAgain)).filter((g) => g.name !== opts.replacing?.name)
    : [];
  const cycle = findCycle([...graph, ...tasks.map((t) => ({ ...t, waiting: true }))]);
  if (cycle) {
    const message = describeCycle(startAt(cycle, batch));
    throw unprocessable(message, [{ field: 'requires', errors: [message] }]);
  }
}

/** Malformed references and keys a task may not declare; 422 naming them. */
function checkReferences(t: NewTask): void {
  if (t.referenceErrors.length > 0) {
    throw unprocessable(
      `task ${t.name} has a malformed reference: ${t.referenceErrors[0]}`,
      t.referenceErrors.map((e) => ({ field: 'input', errors: [e] })),
    );
  }
  const reserved = t.produces.find((k) => k.startsWith('tasks.'));
  if (reserved)
    throw unprocessable(`task ${t.name} cannot produce ${reserved}: keys under "tasks." are its outputs`, [
      { field: 'produces', errors: [`reserved: ${reserved}`] },
    ]);
}

/** The same cycle, told from the first task of the request on it (the one the user just wrote). */
function startAt(cycle: string[], names: ReadonlySet<string>): string[] {
  const ring = cycle.slice(0, -1);
  const i = ring.findIndex((n) => names.has(n));
  if (i <= 0) return cycle;
  const rotated = [...ring.slice(i), ...ring.slice(0, i)];
  return [...rotated, rotated[0]];
}
