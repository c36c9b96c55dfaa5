import { Inject, Injectable } from '@nestjs/common';
import { In } from 'typeorm';
import {
  describeCycle, evaluateReadiness, findCycle, hasRetryLeft, readPath, isTerminalWorkflow, matchOnError, retryDelayMs, reverseDependencyOrder,
  SKIP_CODES, TagSelection, type DependencyView, type GraphTask, type TaskState,
} from '@tagflow/domain';
import {
  Database, DataEntryEntity, hydrate, insertRows, sql, ReservedNameEntity, TaskDepEntity, TaskEntity, TaskTagEntity, WorkflowEntity, type JsonObject, type LeaseOutcome, type TaskErrorInfo,
  type TaskKind,
} from '@tagflow/persistence';
import { conflict, notFound, unprocessable } from '../common/errors.js';
import { JsonLogger } from '../common/logger.js';
import { QueueService } from '../dispatch/queue.service.js';
import { buildTaskEntity, handlerNames, normalizeSpec, type NewTask, type TaskSpecLike } from './task-spec.js';
import { Transitions } from './transitions.js';
import { Effects, type TxContext } from './tx-context.js';

const OPEN_STATES: TaskState[] = ['WAITING', 'READY', 'RUNNING'];
/** The error code of an attempt a worker gave back when it stopped (see the worker's graceful stop). */
export const INTERRUPTED_CODE = 'WORKER_SHUTDOWN';
const CHUNK = 500;

export interface ReportFields {
  stdout?: string | null;
  stderr?: string | null;
  exit_code?: number | null;
}

export interface AddOptions {
  kind: TaskKind;
  parentId?: string | null;
  /** Handlers and reverts are added by the engine to sealed workflows. */
  engineAdded?: boolean;
  /** The workflow is being created with these tasks: its seal applies after them. */
  creating?: boolean;
}

/**
 * The rules of DESIGN.md: when a task is ready, what a failure does, when a workflow
 * is done. Every method takes a TxContext: it runs inside the workflow's lock, and
 * what it wants done in Redis is collected in ctx.effects and done after commit.
 */
@Injectable()
export class Engine {
  constructor(
    private readonly db: Database,
    private readonly transitions: Transitions,
    private readonly queue: QueueService,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {}

  // ---------------------------------------------------------------- running operations

  /** Runs `fn` under the workflow's lock; 404 when the workflow does not exist. */
  async inWorkflow<T>(workflowId: string, fn: (ctx: TxContext, wf: WorkflowEntity) => Promise<T>): Promise<T> {
    const effects = new Effects();
    const result = await this.db.withWorkflowLock(workflowId, async (em, wf) => {
      if (!wf) throw notFound('workflow', workflowId);
      return fn({ em, now: Date.now(), effects }, wf);
    });
    await this.queue.apply(effects);
    return result;
  }

  /**
   * Runs `fn` holding the locks of the workflows of `taskIds` (taken in id order, so two
   * replicas never wait on each other in a circle), with those tasks read under them.
   * Unknown tasks are simply absent from `tasks`.
   */
  async inTasksWorkflows<T>(taskIds: readonly string[], fn: (ctx: TxContext, workflows: Map<string, WorkflowEntity>, tasks: Map<string, TaskEntity>) => Promise<T>): Promise<T> {
    const effects = new Effects();
    const ids = [...new Set(taskIds)];
    const result = await this.db.withTasksWorkflowsLock(ids, async (em, workflows) => {
      const ctx = { em, now: Date.now(), effects };
      const tasks = new Map((await this.load(ctx, ids)).map((t) => [t.id, t]));
      return fn(ctx, new Map(workflows.map((w) => [w.id, w])), tasks);
    });
    await this.queue.apply(effects);
    return result;
  }

  /** A transaction without the workflow lock (claims: guarded rows of any workflow). */
  async inTransaction<T>(fn: (ctx: TxContext) => Promise<T>): Promise<T> {
    const effects = new Effects();
    const result = await this.db.transaction((em) => fn({ em, now: Date.now(), effects }));
    await this.queue.apply(effects);
    return result;
  }

  // ---------------------------------------------------------------- adding tasks

  async addTasks(ctx: TxContext, wf: WorkflowEntity, specs: readonly TaskSpecLike[], opts: AddOptions): Promise<TaskEntity[]> {
    if (!opts.engineAdded && !opts.creating) {
      if (isTerminalWorkflow(wf.state)) throw conflict(`workflow ${wf.id} is ${wf.state}: no tasks can be added`);
      if (wf.sealed) throw conflict(`workflow ${wf.id} is sealed: no tasks can be added`);
      if (wf.on_failure === 'rollback' && (await this.hasUnhandledFailure(ctx, wf.id))) {
        throw conflict(`workflow ${wf.id} is rolling back after a failure: no tasks can be added`, { state: wf.state });
      }
    }
    const tasks = specs.map(normalizeSpec);
    await this.validateNewTasks(ctx, wf, tasks, opts);

    const rows = tasks.map((t) => buildTaskEntity(wf.id, t, opts.kind, opts.parentId ?? null, ctx.now));
    await insertRows(ctx.em, TaskEntity, rows);
    await insertRows(ctx.em, TaskTagEntity, rows.flatMap((r) => r.tags.map((tag) => ({ task_id: r.id, tag, workflow_id: wf.id }))));
    await insertRows(ctx.em, TaskDepEntity, rows.flatMap((r) => depRows(r)));
    await insertRows(ctx.em, ReservedNameEntity, rows.flatMap((r, i) => handlerNames(tasks[i]).map((name) => ({ workflow_id: wf.id, name, owner_task_id: r.id }))));
    // The new rows are the WAITING tasks to evaluate; those that become READY are updated
    // in place. A task that ends at once (skipped, deadlocked) may take others with it
    // (on_failure), so then the batch is read back.
    const someEnded = await this.evaluateWaiting(ctx, wf, rows);
    return someEnded ? this.load(ctx, rows.map((r) => r.id)) : rows;
  }

  /** Names, references and cycles; throws 422 naming the offender, before anything is written. */
  private async validateNewTasks(ctx: TxContext, wf: WorkflowEntity, tasks: NewTask[], opts: AddOptions): Promise<void> {
    const batch = new Set<string>();
    for (const t of tasks) {
      if (batch.has(t.name)) throw unprocessable(`duplicate task name ${t.name} in the request`, [{ field: 'name', errors: [`duplicate: ${t.name}`] }]);
      batch.add(t.name);
    }
    for (const t of tasks) checkReferences(t);
    const names = [...batch];
    const taken = await this.existingNames(ctx, wf.id, names);
    for (const name of names) {
      if (taken.has(name)) throw unprocessable(`task name ${name} is already used in workflow ${wf.id}`, [{ field: 'name', errors: [`already used: ${name}`] }]);
    }
    const reserved = await ctx.em.getRepository(ReservedNameEntity).findBy({ workflow_id: wf.id, name: In(names) });
    for (const r of reserved) {
      if (r.owner_task_id !== opts.parentId) {
        throw unprocessable(`task name ${r.name} is reserved for an on_error handler of task ${r.owner_task_id}`, [{ field: 'name', errors: [`reserved: ${r.name}`] }]);
      }
    }

    // Handler names: unique against every task and every other task's handlers.
    const handlerOwner = new Map<string, string>();
    for (const t of tasks) {
      for (const h of handlerNames(t)) {
        if (batch.has(h)) throw unprocessable(`on_error handler name ${h} of task ${t.name} clashes with a task of the same name`);
        const other = handlerOwner.get(h);
        if (other && other !== t.name) throw unprocessable(`on_error handler name ${h} is used by tasks ${other} and ${t.name}`);
        handlerOwner.set(h, t.name);
      }
    }
    if (handlerOwner.size > 0) {
      const hNames = [...handlerOwner.keys()];
      const clash = [...(await this.existingNames(ctx, wf.id, hNames))][0];
      if (clash) throw unprocessable(`on_error handler name ${clash} of task ${handlerOwner.get(clash)} clashes with an existing task`);
      const res = await ctx.em.getRepository(ReservedNameEntity).findBy({ workflow_id: wf.id, name: In(hNames) });
      if (res.length > 0) throw unprocessable(`on_error handler name ${res[0].name} is already reserved by task ${res[0].owner_task_id}`);
    }

    // References by name must point at a task of the workflow (or of this batch); handlers'
    // too, looked up in the same query.
    const handlerRequires = tasks.flatMap((t) => t.on_error.flatMap((e) => e.run.flatMap((r) => (r.requires as string[] | undefined) ?? [])));
    const referenced = new Set([...tasks.flatMap((t) => t.requires), ...handlerRequires]);
    const known = new Set([...batch, ...(await this.existingNames(ctx, wf.id, [...referenced]))]);
    for (const t of tasks) {
      for (const r of t.requires) {
        if (r === t.name) throw unprocessable(describeCycle([t.name, t.name]), [{ field: 'requires', errors: [`${t.name} requires itself`] }]);
        if (!known.has(r)) throw unprocessable(`task ${t.name} requires unknown task ${r}`, [{ field: 'requires', errors: [`unknown task: ${r}`] }]);
      }
      for (const entry of t.on_error) {
        const local = new Set(entry.run.map((r) => r.name as unknown).filter((n): n is string => typeof n === 'string'));
        for (const run of entry.run) {
          for (const r of (run.requires as string[] | undefined) ?? []) {
            if (!local.has(r) && !known.has(r)) {
              throw unprocessable(`on_error handler of task ${t.name} requires unknown task ${r}`);
            }
          }
        }
      }
    }

    // A cycle through a new task must come back into the batch from an existing task, and
    // existing tasks can only reach new ones by selecting their tags or reading keys they
    // produce (names they require existed before). If none does, the batch alone decides.
    const reachable = await this.existingTasksReach(ctx, wf.id, [...new Set(tasks.flatMap((t) => t.tags))], [...new Set(tasks.flatMap((t) => t.produces))]);
    const graph = reachable ? await this.graphOf(ctx, wf.id) : [];
    const cycle = findCycle([...graph, ...tasks.map((t) => ({ ...t, waiting: true }))]);
    if (cycle) {
      const message = describeCycle(startAt(cycle, batch));
      throw unprocessable(message, [{ field: 'requires', errors: [message] }]);
    }
  }

  // ---------------------------------------------------------------- readiness

  /**
   * Re-evaluates WAITING tasks: those whose dependencies are met become READY (and are
   * queued if the workflow runs); those with a dependency that can never succeed are
   * SKIPPED, and their own dependents are evaluated in turn.
   */
  async evaluate(ctx: TxContext, wf: WorkflowEntity, candidateIds: readonly string[]): Promise<void> {
    await this.evaluateWaiting(ctx, wf, await this.loadWhere(ctx, [...new Set(candidateIds)], ['WAITING']));
  }

  /**
   * `evaluate` for WAITING tasks the caller holds: a task that becomes READY is updated in
   * place. Returns whether any ended instead (skipped or failed), whose rows changed in
   * more ways than that.
   */
  private async evaluateWaiting(ctx: TxContext, wf: WorkflowEntity, waiting: TaskEntity[]): Promise<boolean> {
    let someEnded = false;
    let tasks = waiting;
    while (tasks.length > 0) {
      const byName = await this.viewsByName(ctx, wf.id, [...new Set(tasks.flatMap((t) => t.requires))]);
      const byTag = await this.viewsByTag(ctx, wf.id, [...new Set(tasks.flatMap((t) => t.requires_tags))]);
      const data = await this.dataState(ctx, wf, [...new Set(tasks.flatMap((t) => t.data_requires))]);
      const ready: TaskEntity[] = [];
      const skipped: TaskEntity[] = [];
      // Tasks selecting the same tags share one summary of the members.
      const selections = new Map<string, TagSelection>();
      const selectionOf = (tags: readonly string[]) => {
        const key = tags.join('\n');
        let sel = selections.get(key);
        if (!sel) selections.set(key, (sel = TagSelection.of(tags.flatMap((tag) => byTag.get(tag) ?? []))));
        return sel;
      };
      for (const task of tasks) {
        const missing = task.data_requires.filter((k) => !data.written.has(k));
        const verdict = evaluateReadiness({
          task, byName, tags: task.requires_tags.length ? selectionOf(task.requires_tags) : TagSelection.none, sealed: wf.sealed,
          data: { missing, unproducible: missing.filter((k) => !data.producible.has(k)) },
        });
        if (verdict.kind === 'ready') ready.push(task);
        else if (verdict.kind === 'deadlock') {
          someEnded = true;
          await this.deadlock(ctx, wf, task, verdict.message);
        } else if (verdict.kind === 'dead') {
          const moved = await this.transitions.tasks(ctx, {
            ids: [task.id], from: ['WAITING'], to: 'SKIPPED',
            set: { error: { code: verdict.code, message: verdict.message } }, reason: verdict.message,
          });
          if (moved.length) skipped.push(task);
        }
      }
      if (ready.length > 0) {
        const moved = new Set(await this.transitions.tasks(ctx, { ids: ready.map((t) => t.id), from: ['WAITING'], to: 'READY', set: { ready_at: ctx.now }, reason: 'dependencies met' }));
        for (const t of ready) {
          if (!moved.has(t.id)) continue;
          Object.assign(t, { state: 'READY', ready_at: ctx.now, updated_at: ctx.now });
          if (wf.state === 'RUNNING') ctx.effects.enqueue.push(this.enqueueItem(t, 0));
        }
      }
      tasks = [];
      if (skipped.length > 0) {
        someEnded = true;
        ctx.effects.finished.push(...skipped.map((t) => t.id));
        tasks = await this.loadWhere(ctx, await this.dependentsOf(ctx, wf.id, skipped), ['WAITING']);
      }
    }
    return someEnded;
  }

  /** Which of `keys` are written, and which missing ones an unfinished task still declares it produces. */
  private async dataState(ctx: TxContext, wf: WorkflowEntity, keys: string[]): Promise<{ written: Set<string>; producible: Set<string> }> {
    if (keys.length === 0) return { written: new Set(), producible: new Set() };
    const rows = await ctx.em.getRepository(DataEntryEntity).find({ select: { key: true }, where: { workflow_id: wf.id, key: In(keys) } });
    const written = new Set(rows.map((r) => r.key));
    const missing = keys.filter((k) => !written.has(k));
    const producible = new Set<string>();
    if (missing.length > 0 && wf.sealed) {
      const producers = await ctx.em
        .createQueryBuilder(TaskDepEntity, 'd')
        .select('DISTINCT d.dep_key', 'key')
        .innerJoin(TaskEntity, 't', `t.id = d.task_id AND t.state IN ('WAITING', 'READY', 'RUNNING')`)
        .where(`d.workflow_id = :wf AND d.kind = 'produces' AND d.dep_key IN (:...keys)`, { wf: wf.id, keys: missing })
        .getRawMany<{ key: string }>();
      for (const p of producers) producible.add(p.key);
    }
    return { written, producible };
  }

  /** A WAITING task that can never run fails with DEADLOCK; its on_error and the workflow's on_failure apply. */
  private async deadlock(ctx: TxContext, wf: WorkflowEntity, task: TaskEntity, message: string): Promise<void> {
    const moved = await this.transitions.tasks(ctx, {
      ids: [task.id], from: ['WAITING'], to: 'ERROR', set: { error: { code: 'DEADLOCK', message } }, reason: `deadlock: ${message}`,
    });
    if (moved.length === 0) return;
    this.logger.event('warn', 'engine', 'task can never run', { workflow_id: wf.id, task_id: task.id, reason: message });
    await this.failedForGood(ctx, wf, (await this.load(ctx, [task.id]))[0]);
  }

  /**
   * Writes a data key (never blocks): readers waiting for it are evaluated, and blocked
   * reads anywhere are woken after commit.
   */
  async writeData(ctx: TxContext, wf: WorkflowEntity, key: string, value: unknown, taskId: string | null): Promise<void> {
    const repo = ctx.em.getRepository(DataEntryEntity);
    const updated = await repo.update({ workflow_id: wf.id, key }, { value: value as object, written_at: ctx.now, task_id: taskId });
    if ((updated.affected ?? 0) === 0) await insertRows(ctx.em, DataEntryEntity, [{ workflow_id: wf.id, key, value, written_at: ctx.now, task_id: taskId }]);
    ctx.effects.dataWritten.push({ workflowId: wf.id, key });
    const readers = await ctx.em
      .createQueryBuilder(TaskDepEntity, 'd')
      .select('DISTINCT d.task_id', 'task_id')
      .innerJoin(TaskEntity, 't', `t.id = d.task_id AND t.state = 'WAITING'`)
      .where(`d.workflow_id = :wf AND d.kind = 'data' AND d.dep_key = :key`, { wf: wf.id, key })
      .getRawMany<{ task_id: string }>();
    await this.evaluate(ctx, wf, readers.map((r) => r.task_id));
  }

  /** WAITING tasks that name one of `tasks` in requires or select one of their tags. */
  async dependentsOf(ctx: TxContext, workflowId: string, tasks: readonly (Pick<TaskEntity, 'name' | 'tags'> & { produces?: string[] })[]): Promise<string[]> {
    const names = [...new Set(tasks.map((t) => t.name))];
    const tags = [...new Set(tasks.flatMap((t) => t.tags))];
    // Readers of the keys a finished task produces: written now, or maybe never (a deadlock).
    const keys = [...new Set(tasks.flatMap((t) => t.produces ?? []))];
    // One indexed probe per kind (workflow_id, kind, dep_key), joined by UNION: with the
    // kinds ORed in one WHERE, SQLite used only the index's workflow_id and read every
    // dependency of the workflow (13 ms a call with 99,000 of them).
    const parts: string[] = [];
    const probe = (kind: string, list: string) =>
      `SELECT d.task_id FROM task_dep d JOIN task t ON t.id = d.task_id AND t.state = 'WAITING'
        WHERE d.workflow_id = :wf AND d.kind = '${kind}' AND d.dep_key IN (:${list})`;
    if (names.length) parts.push(probe('name', 'names'));
    if (tags.length) parts.push(probe('tag', 'tags'));
    if (keys.length) parts.push(probe('data', 'keys'));
    if (parts.length === 0) return [];
    const { rows } = await sql(ctx.em, parts.join(' UNION '), { wf: workflowId, names, tags, keys });
    return rows.map((r) => r.task_id as string); // UNION has removed duplicates
  }

  /** After tasks reached a terminal state (or were handled): wake waiters, release dependents, maybe finish. */
  async afterSettled(ctx: TxContext, wf: WorkflowEntity, tasks: readonly TaskEntity[]): Promise<void> {
    ctx.effects.finished.push(...tasks.map((t) => t.id));
    for (const t of tasks) if (t.kind === 'handler' && t.parent_task_id) await this.checkHandlers(ctx, wf, t.parent_task_id);
    // A tag selector is met only when every member is done: while another member of a tag
    // is still open, its selectors need no evaluation (that would cost the group's size per
    // member, the square of it in all). A dead member kills its selectors at once.
    const open = await this.tagsWithOpenMembers(ctx, wf.id, [...new Set(tasks.filter((t) => !isDead(t)).flatMap((t) => t.tags))]);
    const release = tasks.map((t) => ({ name: t.name, produces: t.produces, tags: isDead(t) ? t.tags : t.tags.filter((tag) => !open.has(tag)) }));
    await this.evaluate(ctx, wf, await this.dependentsOf(ctx, wf.id, release));
    await this.checkCompletion(ctx, wf);
  }

  /**
   * Which of `tags` some unfinished task of the workflow still carries. Only tags some task
   * selects matter (nobody waiting: nothing to release either way): per tag, one indexed
   * probe for a selector, then one for an open member.
   */
  private async tagsWithOpenMembers(ctx: TxContext, workflowId: string, tags: string[]): Promise<Set<string>> {
    const open = new Set<string>();
    for (const tag of tags) {
      const selected = await sql(ctx.em, `SELECT 1 AS one FROM task_dep WHERE workflow_id = :wf AND kind = 'tag' AND dep_key = :tag LIMIT 1`, { wf: workflowId, tag });
      if (selected.rows.length === 0) continue;
      const member = await sql(
        ctx.em,
        // A waiting member that selects this very tag waits for the others, not for itself.
        // Newest first (ids are time-ordered): tasks finish roughly oldest first, so an open
        // member is near the top, and the walk follows ix_task_tag_members. (Folding the
        // "is selected" test in as an EXISTS made SQLite sort every member first.)
        `SELECT tt.task_id FROM task_tag tt JOIN task t ON t.id = tt.task_id
          WHERE tt.workflow_id = :wf AND tt.tag = :tag
            AND (t.state IN ('WAITING', 'READY', 'RUNNING') OR t.handling = :yes)
            AND NOT (t.state = 'WAITING' AND EXISTS (SELECT 1 FROM task_dep sd WHERE sd.task_id = t.id AND sd.kind = 'tag' AND sd.dep_key = :tag))
          ORDER BY tt.task_id DESC
          LIMIT 1`,
        { wf: workflowId, tag, yes: true },
      );
      if (member.rows.length > 0) open.add(tag);
    }
    return open;
  }

  // ---------------------------------------------------------------- reports

  /**
   * RUNNING -> SUCCESS for a batch of reports checked under their workflows' locks (one
   * statement for all), then what each output declares in `produces` goes to the data
   * space. The task objects follow their rows; the caller then runs afterSettled (once
   * for all the tasks of a workflow it completes together).
   */
  async markCompleted(ctx: TxContext, reports: readonly { wf: WorkflowEntity; task: TaskEntity; output: JsonObject; report: ReportFields }[]): Promise<void> {
    const items = reports.map(({ task, output, report }) => ({ task, set: { output, ...reportSet(report), lease_outcome: 'complete' as const, error: null } }));
    await this.transitions.each(ctx, 'RUNNING', 'SUCCESS', items, 'completed');
    for (const { wf, task, output } of reports) {
      this.releaseJob(ctx, task);
      // A declared key found in the output (at that path) is written to the data space.
      for (const key of task.produces) {
        const found = readPath(output, key.split('.'));
        if (found.found) await this.writeData(ctx, wf, key, found.value, task.id);
      }
      ctx.effects.dataWritten.push({ workflowId: wf.id, key: `tasks.${task.name}.output` });
    }
  }

  /**
   * A failed attempt (reported, timed out, or lease expired): retried after its delay
   * while the policy allows, else the task fails for good. A task whose cancel was
   * requested ends CANCELLED instead.
   */
  async failAttempt(ctx: TxContext, wf: WorkflowEntity, task: TaskEntity, error: TaskErrorInfo, retryable: boolean, report: ReportFields, outcome: LeaseOutcome): Promise<void> {
    this.releaseJob(ctx, task);
    if (task.cancel_requested) {
      await this.transitions.tasks(ctx, {
        ids: [task.id], from: ['RUNNING'], to: 'CANCELLED',
        set: { error: { code: 'CANCELLED', message: `cancelled on request (${error.message})` }, ...reportSet(report), lease_outcome: outcome },
        reason: 'cancel requested', known: task,
      });
      await this.afterSettled(ctx, wf, await this.load(ctx, [task.id]));
      return;
    }
    // A worker that stopped mid-task hands it back: that attempt says nothing about the
    // task, so it runs again at once whatever its retry budget.
    const interrupted = error.code === INTERRUPTED_CODE;
    if (retryable && (interrupted || hasRetryLeft(task.retry, task.attempt)) && !isTerminalWorkflow(wf.state)) {
      const delayMs = interrupted ? 0 : retryDelayMs(task.retry, task.attempt);
      const moved = await this.transitions.tasks(ctx, {
        ids: [task.id], from: ['RUNNING'], to: 'READY',
        set: { attempt: task.attempt + 1, ready_at: ctx.now + delayMs, error, ...reportSet(report), lease_outcome: outcome, worker_id: null },
        guard: { attempt: task.attempt }, reason: `attempt ${task.attempt} failed: ${error.code ?? 'ERROR'}; retry in ${delayMs} ms`,
        known: { workflow_id: task.workflow_id, attempt: task.attempt + 1 },
      });
      if (moved.length && wf.state === 'RUNNING') ctx.effects.enqueue.push(this.enqueueItem({ ...task, attempt: task.attempt + 1 }, delayMs));
      return;
    }
    await this.transitions.tasks(ctx, {
      ids: [task.id], from: ['RUNNING'], to: 'ERROR',
      set: { error, ...reportSet(report), lease_outcome: outcome }, reason: `failed: ${error.code ?? 'ERROR'}`, known: task,
    });
    await this.failedForGood(ctx, wf, (await this.load(ctx, [task.id]))[0]);
  }

  /** A task is ERROR with no retry left: run its on_error handlers, or apply on_failure. */
  private async failedForGood(ctx: TxContext, wf: WorkflowEntity, task: TaskEntity): Promise<void> {
    const entry = isTerminalWorkflow(wf.state) ? undefined : matchOnError(task.on_error, task.error?.code, task.exit_code);
    if (entry) {
      const started = await this.startHandlers(ctx, wf, task, entry.run as unknown as TaskSpecLike[]);
      if (started) {
        ctx.effects.finished.push(task.id);
        return;
      }
    }
    await this.unhandledFailure(ctx, wf, task);
    await this.afterSettled(ctx, wf, [task]);
  }

  private async startHandlers(ctx: TxContext, wf: WorkflowEntity, task: TaskEntity, run: TaskSpecLike[]): Promise<boolean> {
    const failure = { error: task.error, failed_task: { id: task.id, name: task.name, attempt: task.attempt, exit_code: task.exit_code } };
    // A task that fails again after a rerun runs its handlers again, under suffixed names.
    const wanted = run.map((r) => r.name).filter((n): n is string => !!n);
    const used = await this.existingNames(ctx, wf.id, wanted);
    const suffix = used.size > 0 ? `.${task.attempt}` : '';
    const specs = run.map((r) => ({
      ...r,
      name: r.name ? `${r.name}${suffix}` : undefined,
      requires: (r.requires ?? []).map((n) => (wanted.includes(n) ? `${n}${suffix}` : n)),
      input: { ...(r.input ?? {}), ...failure },
    }));
    try {
      await ctx.em.getRepository(TaskEntity).update({ id: task.id }, { handling: true, updated_at: ctx.now });
      await this.addTasks(ctx, wf, specs, { kind: 'handler', parentId: task.id, engineAdded: true });
      return true;
    } catch (e) {
      await ctx.em.getRepository(TaskEntity).update({ id: task.id }, { handling: false });
      this.logger.event('warn', 'engine', 'on_error handlers could not be added; the failure is unhandled', {
        task_id: task.id, error: e instanceof Error ? e.message : String(e),
      });
      return false;
    }
  }

  /** When every handler of a failed task is done: handled if all succeeded, else unhandled. */
  private async checkHandlers(ctx: TxContext, wf: WorkflowEntity, parentId: string): Promise<void> {
    const parent = (await this.load(ctx, [parentId]))[0];
    if (!parent || !parent.handling) return;
    const handlers = await ctx.em
      .getRepository(TaskEntity)
      .createQueryBuilder('t')
      .where('t.parent_task_id = :p AND t.kind = :k AND t.created_at >= :since', { p: parentId, k: 'handler', since: parent.finished_at ?? 0 })
      .getMany();
    if (handlers.some((h) => OPEN_STATES.includes(h.state) || h.handling)) return;
    const allGood = handlers.every((h) => h.state === 'SUCCESS' || (h.state === 'ERROR' && h.handled));
    await ctx.em.getRepository(TaskEntity).update({ id: parentId }, { handling: false, handled: allGood, updated_at: ctx.now });
    const updated = (await this.load(ctx, [parentId]))[0];
    if (!allGood) await this.unhandledFailure(ctx, wf, updated);
    await this.afterSettled(ctx, wf, [updated]);
  }

  private async unhandledFailure(ctx: TxContext, wf: WorkflowEntity, task: TaskEntity): Promise<void> {
    const message = `task ${task.name} failed: ${task.error?.message ?? 'unknown error'}`;
    switch (wf.on_failure) {
      case 'fail':
        await this.stopWorkflow(ctx, wf, 'ERROR', message);
        return;
      case 'rollback':
        // Stop everything now; the reverts start once nothing runs any more (checkCompletion).
        await this.stopTasks(ctx, wf, 'SKIPPED', SKIP_CODES.workflowFailed, message);
        return;
      case 'continue':
        return; // only the dependents are skipped, by evaluate()
    }
  }

  // ---------------------------------------------------------------- workflow-wide

  /** Ends the workflow now: waiting work is skipped or cancelled, running work asked to cancel. */
  async stopWorkflow(ctx: TxContext, wf: WorkflowEntity, to: 'ERROR' | 'CANCELLED', message: string): Promise<void> {
    const code = to === 'ERROR' ? SKIP_CODES.workflowFailed : SKIP_CODES.workflowCancelled;
    await this.stopTasks(ctx, wf, to === 'ERROR' ? 'SKIPPED' : 'CANCELLED', code, message);
    if (await this.transitions.workflow(ctx, wf.id, ['RUNNING', 'PAUSED'], to)) {
      wf.state = to;
      wf.finished_at = ctx.now;
    }
  }

  private async stopTasks(ctx: TxContext, wf: WorkflowEntity, to: 'SKIPPED' | 'CANCELLED', code: string, message: string): Promise<void> {
    const open = await ctx.em.getRepository(TaskEntity).find({ select: { id: true }, where: { workflow_id: wf.id, state: In(['WAITING', 'READY']) } });
    const moved = await this.transitions.tasks(ctx, { ids: open.map((t) => t.id), from: ['WAITING', 'READY'], to, set: { error: { code, message } }, reason: message });
    ctx.effects.finished.push(...moved);
    await ctx.em.getRepository(TaskEntity).update({ workflow_id: wf.id, state: 'RUNNING' }, { cancel_requested: true, updated_at: ctx.now });
  }

  /** A workflow is done when sealed and every task is terminal (a rollback ends it regardless of the seal). */
  async checkCompletion(ctx: TxContext, wf: WorkflowEntity): Promise<void> {
    if (isTerminalWorkflow(wf.state)) return;
    // Indexed probes that stop at the first row: this runs after every report.
    if (await this.anyTask(ctx, wf.id, `t.state IN ('READY', 'RUNNING')`)) return;
    if (await this.anyTask(ctx, wf.id, `t.state = 'ERROR' AND t.handling = :yes`, { yes: true })) return;
    if (await this.anyTask(ctx, wf.id, `t.state = 'WAITING'`)) {
      // Never hang silently: in a sealed, running workflow where nothing can move any
      // more, the tasks still waiting never will. (The rules above should always catch
      // this first; reaching here is reported loudly.)
      if (wf.sealed && wf.state === 'RUNNING') {
        const stuck = await ctx.em.getRepository(TaskEntity).find({ where: { workflow_id: wf.id, state: 'WAITING' } });
        this.logger.event('warn', 'engine', 'sealed workflow cannot make progress; failing its waiting tasks', { workflow_id: wf.id, tasks: stuck.length });
        for (const t of stuck) await this.deadlock(ctx, wf, t, `nothing left can satisfy what it waits for (${describeWaits(t)})`);
      }
      return;
    }
    const failed = await this.hasUnhandledFailure(ctx, wf.id);
    if (failed && wf.on_failure === 'rollback') {
      if (!wf.rollback_started && (await this.startRollback(ctx, wf)) > 0) return;
      await this.finish(ctx, wf, 'ERROR');
      return;
    }
    if (wf.sealed) await this.finish(ctx, wf, failed ? 'ERROR' : 'SUCCESS');
  }

  private async finish(ctx: TxContext, wf: WorkflowEntity, to: 'SUCCESS' | 'ERROR'): Promise<void> {
    if (await this.transitions.workflow(ctx, wf.id, ['RUNNING', 'PAUSED'], to)) {
      wf.state = to;
      wf.finished_at = ctx.now;
      this.logger.event('info', 'engine', 'workflow finished', { workflow_id: wf.id, state: to });
    }
  }

  private async anyTask(ctx: TxContext, workflowId: string, where: string, params: Record<string, unknown> = {}): Promise<boolean> {
    const { rows } = await sql(ctx.em, `SELECT id FROM task t WHERE t.workflow_id = :wf AND ${where} LIMIT 1`, { ...params, wf: workflowId });
    return rows.length > 0;
  }

  /** An ERROR task whose failure was not handled, or a task skipped because of one. */
  private async hasUnhandledFailure(ctx: TxContext, workflowId: string): Promise<boolean> {
    const rows = await ctx.em.getRepository(TaskEntity).find({
      select: { id: true, state: true, handled: true, error: true },
      where: { workflow_id: workflowId, state: In(['ERROR', 'SKIPPED']) },
    });
    return rows.some(
      (t) => (t.state === 'ERROR' && !t.handled) ||
        (t.state === 'SKIPPED' && (t.error?.code === SKIP_CODES.dependencyFailed || t.error?.code === SKIP_CODES.workflowFailed)),
    );
  }

  /** Adds the revert of every task that succeeded, in reverse dependency order, on the same tags. */
  private async startRollback(ctx: TxContext, wf: WorkflowEntity): Promise<number> {
    await ctx.em.getRepository(WorkflowEntity).update({ id: wf.id }, { rollback_started: true, updated_at: ctx.now });
    wf.rollback_started = true;
    const all = await ctx.em.getRepository(TaskEntity).find({ where: { workflow_id: wf.id } });
    const revertible = all.filter((t) => t.state === 'SUCCESS' && t.revert && t.kind !== 'revert');
    if (revertible.length === 0) return 0;
    const order = reverseDependencyOrder(all, new Set(revertible.map((t) => t.name)));
    const taken = new Set(all.map((t) => t.name));
    const revertName = new Map<string, string>();
    for (const t of revertible) {
      let name = `${t.name}.revert`.slice(0, 128);
      for (let i = 2; taken.has(name); i++) name = `${t.name}.revert.${i}`.slice(0, 128);
      taken.add(name);
      revertName.set(t.name, name);
    }
    const specs: TaskSpecLike[] = revertible.map((t) => ({
      name: revertName.get(t.name),
      tags: t.tags,
      action: t.revert!,
      input: { task: t.name, input: t.input, output: t.output },
      requires: (order.get(t.name) ?? []).map((n) => revertName.get(n)!),
      lease_s: t.lease_s,
      ...(t.timeout_s ? { timeout_s: t.timeout_s } : {}),
    }));
    await this.addTasks(ctx, wf, specs, { kind: 'revert', engineAdded: true });
    this.logger.event('info', 'engine', 'rollback started', { workflow_id: wf.id, reverts: specs.length });
    return specs.length;
  }

  // ---------------------------------------------------------------- helpers

  enqueueItem(t: Pick<TaskEntity, 'id' | 'attempt' | 'tagset_id' | 'tags'>, delayMs: number) {
    return { taskId: t.id, attempt: t.attempt, tagsetId: t.tagset_id, tags: t.tags, delayMs };
  }

  releaseJob(ctx: TxContext, task: TaskEntity): void {
    if (task.lease_token) ctx.effects.releaseJobs.push({ tagsetId: task.tagset_id, jobId: this.queue.jobId(task.id, task.attempt), token: task.lease_token });
  }

  async load(ctx: TxContext, ids: readonly string[]): Promise<TaskEntity[]> {
    if (ids.length === 0) return [];
    const out: TaskEntity[] = [];
    for (let i = 0; i < ids.length; i += CHUNK) {
      const { rows } = await sql(ctx.em, 'SELECT * FROM task WHERE id IN (:ids)', { ids: ids.slice(i, i + CHUNK) });
      for (const r of rows) out.push(hydrate(ctx.em, TaskEntity, r));
    }
    const order = new Map(ids.map((id, i) => [id, i]));
    return out.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  }

  private async loadWhere(ctx: TxContext, ids: readonly string[], states: TaskState[]): Promise<TaskEntity[]> {
    return (await this.load(ctx, ids)).filter((t) => states.includes(t.state));
  }

  private async existingNames(ctx: TxContext, workflowId: string, names: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (let i = 0; i < names.length; i += CHUNK) {
      const rows = await ctx.em.getRepository(TaskEntity).find({ select: { name: true }, where: { workflow_id: workflowId, name: In(names.slice(i, i + CHUNK)) } });
      for (const r of rows) found.add(r.name);
    }
    return found;
  }

  private async viewsByName(ctx: TxContext, workflowId: string, names: string[]): Promise<Map<string, DependencyView>> {
    const map = new Map<string, DependencyView>();
    for (let i = 0; i < names.length; i += CHUNK) {
      const rows = await ctx.em.getRepository(TaskEntity).find({
        select: { id: true, name: true, state: true, handled: true, handling: true, error: true },
        where: { workflow_id: workflowId, name: In(names.slice(i, i + CHUNK)) },
      });
      for (const r of rows) map.set(r.name, toView(r));
    }
    return map;
  }

  private async viewsByTag(ctx: TxContext, workflowId: string, tags: string[]): Promise<Map<string, DependencyView[]>> {
    const map = new Map<string, DependencyView[]>();
    if (tags.length === 0) return map;
    const rows = await ctx.em
      .createQueryBuilder(TaskTagEntity, 'tt')
      .innerJoin(TaskEntity, 't', 't.id = tt.task_id')
      .select(['tt.tag AS tag', 't.id AS id', 't.name AS name', 't.state AS state', 't.handled AS handled', 't.handling AS handling', 't.error AS error'])
      .where('tt.workflow_id = :wf', { wf: workflowId })
      .andWhere('tt.tag IN (:...tags)', { tags })
      .getRawMany<{ tag: string; id: string; name: string; state: TaskState; handled: unknown; handling: unknown; error: string | null }>();
    for (const r of rows) {
      const view: DependencyView = {
        id: r.id, name: r.name, state: r.state, handled: truthy(r.handled), handling: truthy(r.handling),
        errorCode: r.error ? ((JSON.parse(r.error) as TaskErrorInfo).code ?? null) : null,
      };
      (map.get(r.tag) ?? map.set(r.tag, []).get(r.tag)!).push(view);
    }
    return map;
  }

  /** Whether a WAITING task of the workflow selects one of `tags` or reads one of `keys`. */
  private async existingTasksReach(ctx: TxContext, workflowId: string, tags: string[], keys: string[]): Promise<boolean> {
    const clauses: string[] = [];
    if (tags.length) clauses.push(`(d.kind = 'tag' AND d.dep_key IN (:...tags))`);
    if (keys.length) clauses.push(`(d.kind = 'data' AND d.dep_key IN (:...keys))`);
    if (clauses.length === 0) return false;
    const row = await ctx.em
      .createQueryBuilder(TaskDepEntity, 'd')
      .select('d.task_id', 'id')
      .innerJoin(TaskEntity, 't', `t.id = d.task_id AND t.state = 'WAITING'`)
      .where('d.workflow_id = :wf', { wf: workflowId })
      .andWhere(`(${clauses.join(' OR ')})`, { tags, keys })
      .limit(1)
      .getRawOne<{ id: string }>();
    return row !== undefined;
  }

  /** The dependency graph of a workflow's existing tasks (only WAITING ones have edges). */
  async graphOf(ctx: TxContext, workflowId: string): Promise<GraphTask[]> {
    const rows = await ctx.em.getRepository(TaskEntity).find({
      select: { name: true, tags: true, requires: true, requires_tags: true, produces: true, data_requires: true, state: true },
      where: { workflow_id: workflowId },
    });
    return rows.map((r) => ({
      name: r.name, tags: r.tags, requires: r.requires, requires_tags: r.requires_tags, produces: r.produces, data_requires: r.data_requires,
      waiting: r.state === 'WAITING',
    }));
  }

}

/** The same cycle, told from the first task of the request on it (the one the user just wrote). */
function startAt(cycle: string[], names: ReadonlySet<string>): string[] {
  const ring = cycle.slice(0, -1);
  const i = ring.findIndex((n) => names.has(n));
  if (i <= 0) return cycle;
  const rotated = [...ring.slice(i), ...ring.slice(0, i)];
  return [...rotated, rotated[0]];
}

/** A task that can never succeed: its dependents are skipped at once. */
function isDead(t: Pick<TaskEntity, 'state' | 'handled' | 'handling'>): boolean {
  return (t.state === 'ERROR' && !t.handled && !t.handling) || t.state === 'SKIPPED' || t.state === 'CANCELLED';
}

function describeWaits(t: Pick<TaskEntity, 'requires' | 'requires_tags' | 'data_requires'>): string {
  const parts = [
    t.requires.length ? `tasks ${t.requires.join(', ')}` : '',
    t.requires_tags.length ? `tags ${t.requires_tags.join(', ')}` : '',
    t.data_requires.length ? `data ${t.data_requires.join(', ')}` : '',
  ].filter(Boolean);
  return parts.join('; ') || 'nothing';
}

/** Malformed references and keys a task may not declare; 422 naming them. */
export function checkReferences(t: NewTask): void {
  if (t.referenceErrors.length > 0) {
    throw unprocessable(`task ${t.name} has a malformed reference: ${t.referenceErrors[0]}`, t.referenceErrors.map((e) => ({ field: 'input', errors: [e] })));
  }
  const reserved = t.produces.find((k) => k.startsWith('tasks.'));
  if (reserved) throw unprocessable(`task ${t.name} cannot produce ${reserved}: keys under "tasks." are its outputs`, [{ field: 'produces', errors: [`reserved: ${reserved}`] }]);
}

export function depRows(t: TaskEntity): TaskDepEntity[] {
  const row = (kind: TaskDepEntity['kind']) => (dep_key: string) => ({ task_id: t.id, kind, dep_key, workflow_id: t.workflow_id });
  return [
    ...t.requires.map(row('name')),
    ...t.requires_tags.map(row('tag')),
    ...t.data_requires.map(row('data')),
    ...t.produces.map(row('produces')),
  ];
}

function toView(t: Pick<TaskEntity, 'id' | 'name' | 'state' | 'handled' | 'handling' | 'error'>): DependencyView {
  return { id: t.id, name: t.name, state: t.state, handled: t.handled, handling: t.handling, errorCode: t.error?.code ?? null };
}

function truthy(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 't' || v === 'true';
}

const LOG_TAIL = 64 * 1024;

/** Keeps the last 64 KiB of a log (cut on a character boundary). */
export function tail(text: string | null | undefined): string | null {
  if (text === null || text === undefined) return null;
  if (Buffer.byteLength(text) <= LOG_TAIL) return text;
  const buf = Buffer.from(text);
  return buf.subarray(buf.length - LOG_TAIL).toString('utf8').replace(/^\uFFFD+/, '');
}

function reportSet(r: ReportFields) {
  return { stdout: tail(r.stdout), stderr: tail(r.stderr), exit_code: r.exit_code ?? null };
}
