import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDataSource, Database, type TaskEntity } from '@tagflow/persistence';
import { JsonLogger } from '../../common/logger.js';
import { newWorkflowRow } from '../../workflows/workflows.service.js';
import { createWorkflow } from '../control.js';
import { Engine } from '../engine.js';
import { markCompleted } from '../reports.js';
import type { TaskSpecLike } from '../task-spec.js';
import type { Effect, EffectsPort } from '../unit-of-work.js';

/** Keeps what the engine would send to the queue and the bus after each commit. */
export class RecordingEffects implements EffectsPort {
  readonly published: Effect[] = [];
  publish(effects: readonly Effect[]): Promise<void> {
    this.published.push(...effects);
    return Promise.resolve();
  }
}

/**
 * The engine in-process, against a real SQLite database (a fresh file, migrated) through
 * the real repositories; effects are recorded instead of sent. `engine()` makes another
 * engine on the same database: a second API replica, as far as the database can tell.
 */
export class EngineHarness {
  readonly effects = new RecordingEffects();
  readonly logger = new JsonLogger('error');
  readonly engine: Engine;

  private constructor(
    readonly db: Database,
    private readonly dir: string,
    readonly evaluationBudget: number,
  ) {
    this.engine = this.replica();
  }

  static async open(opts: { evaluationBudget?: number } = {}): Promise<EngineHarness> {
    const dir = mkdtempSync(join(tmpdir(), 'tagflow-engine-'));
    const db = new Database(createDataSource(`sqlite:${join(dir, 'engine.db')}`));
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
      Date.now(),
    );
    await this.engine.inTransaction((uow) => createWorkflow(uow, { ...wf }, spec.tasks));
    return wf.id;
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

  /** Names of its tasks in `state`. */
  async named(workflowId: string, state: string): Promise<string[]> {
    return [...(await this.tasks(workflowId)).values()]
      .filter((t) => t.state === state)
      .map((t) => t.name)
      .sort();
  }

  /** Leases the READY tasks named (as a poll would), then completes them in one report batch through `engine`. */
  async complete(workflowId: string, names: readonly string[], engine: Engine = this.engine): Promise<void> {
    const all = await this.tasks(workflowId);
    const ready = names.map((n) => {
      const t = all.get(n);
      if (!t || t.state !== 'READY') throw new Error(`task ${n} is ${t?.state ?? 'missing'}, not READY`);
      return t;
    });
    const leased = await engine.inTransaction((uow) =>
      uow.repos.transitions.claim(
        ready.map((t) => ({
          taskId: t.id,
          attempt: t.attempt,
          tagsetId: t.tagset_id,
          token: randomUUID(),
          workerId: null,
        })),
      ),
    );
    if (leased.length !== ready.length) throw new Error(`leased ${leased.length} of ${ready.length} tasks`);
    await engine.inTasksWorkflows(
      leased.map((t) => t.id),
      async (uow, workflows, tasks) => {
        await markCompleted(
          uow,
          leased.map((t) => ({ wf: workflows.get(t.workflow_id)!, task: tasks.get(t.id)!, output: {}, report: {} })),
        );
      },
    );
  }
}
