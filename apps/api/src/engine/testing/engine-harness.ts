import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createDataSource,
  Database,
  type JsonObject,
  type TaskEntity,
  type WorkflowEntity,
} from '@tagflow/persistence';
import { JsonLogger } from '../../common/logger.js';
import { newWorkflowRow } from '../../workflows/workflows.service.js';
import { createWorkflow } from '../control.js';
import { Engine } from '../engine.js';
import { failAttempt } from '../failure.js';
import { markCompleted, writeData } from '../reports.js';
import { addTasks } from '../submission.js';
import type { TaskSpecLike } from '../task-spec.js';
import type { Effect, EffectsPort, UnitOfWork } from '../unit-of-work.js';

/** Keeps what the engine would send to the queue and the bus after each commit. */
export class RecordingEffects implements EffectsPort {
  readonly published: Effect[] = [];
  publish(effects: readonly Effect[]): Promise<void> {
    this.published.push(...effects);
    return Promise.resolve();
  }
}

/** The database with a clock a test can move forward (not_before, retry delays). */
class ClockedDatabase extends Database {
  shiftMs = 0;
  override now(): number {
    return super.now() + this.shiftMs;
  }
}

type Op = (uow: UnitOfWork, wf: WorkflowEntity) => Promise<void>;
type TaskOp = (uow: UnitOfWork, wf: WorkflowEntity, t: TaskEntity) => Promise<void>;

/**
 * The engine in-process, against a real SQLite database (a fresh file, migrated) through
 * the real repositories; effects are recorded instead of sent. `replica()` makes another
 * engine on the same database: a second API replica, as far as the database can tell.
 * Each helper does what the service behind a route (or the reconciler) does.
 */
export class EngineHarness {
  readonly effects = new RecordingEffects();
  readonly logger = new JsonLogger('error');
  readonly engine: Engine;

  private constructor(
    readonly db: ClockedDatabase,
    private readonly dir: string,
    readonly evaluationBudget: number,
  ) {
    this.engine = this.replica();
  }

  static async open(opts: { evaluationBudget?: number } = {}): Promise<EngineHarness> {
    const dir = mkdtempSync(join(tmpdir(), 'tagflow-engine-'));
    const db = new ClockedDatabase(createDataSource(`sqlite:${join(dir, 'engine.db')}`));
    await db.initialize();
    return new EngineHarness(db, dir, opts.evaluationBudget ?? 5000);
  }

  /** Another engine on the same database and effects (what a second API replica would be). */
  replica(): Engine {
    return new Engine(this.db, this.effects, this.logger, { evaluationBudget: this.evaluationBudget });
  }

  async close(): Promise<void> {
    await this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Moves the engine's clock forward. */
  advance(ms: number): void {
    this.db.shiftMs += ms;
  }

  /** Creates a workflow with its tasks, as POST /v1/workflows does. Returns: its id. */
  async createWorkflow(spec: {
    tasks: TaskSpecLike[];
    sealed?: boolean;
    on_failure?: 'fail' | 'continue' | 'rollback';
  }): Promise<string> {
    const wf = newWorkflowRow(
      { name: `wf-${randomUUID().slice(0, 8)}`, sealed: spec.sealed ?? true, on_failure: spec.on_failure },
      null,
      'default',
      this.db.now(),
    );
    await this.engine.inTransaction((uow) => createWorkflow(uow, { ...wf }, spec.tasks));
    return wf.id;
  }

  /** Runs `op` under the workflow's lock, as the workflow routes (seal, pause, cancel...) do. */
  inWorkflow(workflowId: string, op: Op): Promise<void> {
    return this.engine.inWorkflow(workflowId, op);
  }

  /** Runs `op` on the task named, under its workflow's lock, as the task routes (cancel, rerun, delete) do. */
  onTask(workflowId: string, name: string, op: TaskOp): Promise<void> {
    return this.inWorkflow(workflowId, async (uow, wf) => {
      const t = await uow.repos.tasks.getInWorkflow(workflowId, name, false);
      if (!t) throw new Error(`no task ${name}`);
      await op(uow, wf, t);
    });
  }

  /** Adds tasks to the workflow, as POST /v1/workflows/:id/tasks does. */
  addTasks(workflowId: string, specs: TaskSpecLike[]): Promise<void> {
    return this.inWorkflow(workflowId, async (uow, wf) => {
      await addTasks(uow, wf, specs, { kind: 'task' });
    });
  }

  /**
   * Rewrites a task's `requires` in place, past every check: a database an earlier version
   * wrote may hold a graph the checks now refuse. For the safety nets behind those checks.
   */
  rewriteRequires(workflowId: string, name: string, requires: string[]): Promise<void> {
    return this.onTask(workflowId, name, async (uow, _wf, t) => {
      await uow.repos.tasks.updateSpec(t.id, { requires }, uow.now);
      await uow.repos.deps.replaceFor({ ...t, requires }, []);
    });
  }

  /** Writes a key of the workflow's data space, as PUT /v1/workflows/:id/data/:key does. */
  writeData(workflowId: string, key: string, value: JsonObject[string]): Promise<void> {
    return this.inWorkflow(workflowId, (uow, wf) => writeData(uow, wf, key, value, null));
  }

  /** What the reconciler does at each tick for the tasks whose not_before has come. */
  async wakeDue(): Promise<void> {
    const byWorkflow = new Map<string, string[]>();
    for (const t of await this.db.read().tasks.due(this.db.now(), 1000))
      byWorkflow.set(t.workflow_id, [...(byWorkflow.get(t.workflow_id) ?? []), t.id]);
    for (const [workflowId, ids] of byWorkflow)
      await this.inWorkflow(workflowId, async (uow, wf) => {
        await uow.repos.tasks.woken(ids);
        uow.record({ kind: 'evaluate-ids', wf, ids });
      });
  }

  /** The workflow's row as it is now. */
  async workflow(id: string) {
    const wf = await this.db.read().workflows.get(id, 'default');
    if (!wf) throw new Error(`no workflow ${id}`);
    return wf;
  }

  /** Its tasks by name. */
  async tasks(workflowId: string): Promise<Map<string, TaskEntity>> {
    return new Map((await this.db.read().tasks.allOf(workflowId)).map((t) => [t.name, t]));
  }

  /** One of its tasks, by name. */
  async task(workflowId: string, name: string): Promise<TaskEntity> {
    const t = (await this.tasks(workflowId)).get(name);
    if (!t) throw new Error(`no task ${name}`);
    return t;
  }

  /** Names of its tasks in `state`. */
  async named(workflowId: string, state: string): Promise<string[]> {
    return [...(await this.tasks(workflowId)).values()]
      .filter((t) => t.state === state)
      .map((t) => t.name)
      .sort();
  }

  /** Leases the READY tasks named (as a poll would). Returns: them, RUNNING. */
  async lease(workflowId: string, names: readonly string[], engine: Engine = this.engine): Promise<TaskEntity[]> {
    const all = await this.tasks(workflowId);
    const ready = names.map((n) => {
      const t = all.get(n);
      if (!t || t.state !== 'READY') throw new Error(`task ${n} is ${t?.state ?? 'missing'}, not READY`);
      return t;
    });
    const jobs = ready.map((t) => ({
      taskId: t.id,
      attempt: t.attempt,
      tagsetId: t.tagset_id,
      token: randomUUID(),
      workerId: null,
    }));
    const leased = await engine.inTransaction((uow) => uow.repos.transitions.claim(jobs));
    if (leased.length !== ready.length) throw new Error(`leased ${leased.length} of ${ready.length} tasks`);
    return leased;
  }

  /** Completes the tasks named (leasing those not RUNNING yet) in one report batch, with their `outputs`. */
  async complete(
    workflowId: string,
    names: readonly string[],
    opts: { engine?: Engine; outputs?: Record<string, JsonObject> } = {},
  ): Promise<void> {
    const engine = opts.engine ?? this.engine;
    const tasks = await this.running(workflowId, names, engine);
    await engine.inTasksWorkflows(
      tasks.map((t) => t.id),
      (uow, workflows, rows) =>
        markCompleted(
          uow,
          tasks.map((t) => ({
            wf: workflows.get(t.workflow_id)!,
            task: rows.get(t.id)!,
            output: opts.outputs?.[t.name] ?? {},
            report: {},
          })),
        ),
    );
  }

  /**
   * Reports a failed attempt of the task named (leasing it unless RUNNING), as POST
   * /v1/tasks/:id/fail does: the code defaults to the exit code; retryable unless said otherwise.
   * `handBack`: a lease the API could not deliver (LeaseService.handBack).
   */
  async fail(
    workflowId: string,
    name: string,
    error: { message?: string; code?: string } = {},
    opts: { retryable?: boolean; exit_code?: number; handBack?: boolean } = {},
  ): Promise<void> {
    const [task] = await this.running(workflowId, [name], this.engine);
    const code = error.code ?? (opts.exit_code !== undefined ? String(opts.exit_code) : null);
    const info = { message: error.message ?? `${name} failed`, code };
    await this.engine.inTasksWorkflows([task.id], async (uow, workflows, rows) => {
      const [wf, t, report] = [workflows.get(workflowId)!, rows.get(task.id)!, { exit_code: opts.exit_code }];
      await failAttempt(uow, wf, t, info, opts.retryable !== false, report, 'fail', opts.handBack);
    });
  }

  /** The tasks named, RUNNING (leased first unless they were). */
  private async running(workflowId: string, names: readonly string[], engine: Engine): Promise<TaskEntity[]> {
    const all = await this.tasks(workflowId);
    const toLease = names.filter((n) => all.get(n)?.state !== 'RUNNING');
    const leased = new Map((await this.lease(workflowId, toLease, engine)).map((t) => [t.name, t]));
    return names.map((n) => leased.get(n) ?? all.get(n)!);
  }

  /** A mark in the recorded effects, and the effects recorded since one. */
  mark(): number {
    return this.effects.published.length;
  }
  effectsSince(mark: number): Effect[] {
    return this.effects.published.slice(mark);
  }

  /** Names of the workflow's tasks offered to workers (task-ready effects) since `mark`, sorted. */
  async offered(workflowId: string, mark: number): Promise<string[]> {
    const byId = new Map([...(await this.tasks(workflowId)).values()].map((t) => [t.id, t.name]));
    return this.effectsSince(mark)
      .flatMap((e) => (e.kind === 'task-ready' && byId.has(e.taskId) ? [byId.get(e.taskId)!] : []))
      .sort();
  }

  /** The states the workflow was announced finished with (workflow-finished effects) since `mark`. */
  finishedSince(workflowId: string, mark: number): string[] {
    return this.effectsSince(mark).flatMap((e) =>
      e.kind === 'workflow-finished' && e.workflowId === workflowId ? [e.state] : [],
    );
  }
}
