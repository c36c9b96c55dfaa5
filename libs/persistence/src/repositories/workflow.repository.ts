import type { EntityManager } from 'typeorm';
import type { WorkflowState } from '@tagflow/domain';
import { WorkflowEntity, WorkflowTagEntity } from '../entities/workflow.entity.js';
import { forUpdate, insertRows, kindOf, sql } from '../dialect.js';
import { hydrate } from '../rows.js';
import { rowById } from './pages.js';

export interface WorkflowPageQuery {
  namespace: string;
  state?: WorkflowState;
  name?: string;
  tag?: string;
  before?: { created_at: number; id: string } | null;
  limit: number;
}

/** Tables a workflow's rows live in, children first (a delete walks them in this order). */
const OWNED_TABLES = [
  'task_log',
  'task_event',
  'task_tag',
  'task_dep',
  'reserved_name',
  'data_entry',
  'task',
  'workflow_tag',
  'workflow_event',
  'concurrency_limit',
  'workflow_run_tag',
] as const;

/** The workflow table and its tags. State and flag changes: TransitionRepository. */
export class WorkflowRepository {
  constructor(
    private readonly em: EntityManager,
    /** Writes the task events a transaction still keeps (before its workflow's rows go). */
    private readonly flushEvents: () => Promise<void> = () => Promise.resolve(),
  ) {}

  /** Takes: a new workflow. Writes it and its tag rows. */
  async insert(wf: WorkflowEntity): Promise<void> {
    await insertRows(this.em, WorkflowEntity, [wf]);
    await insertRows(
      this.em,
      WorkflowTagEntity,
      wf.tags.map((tag) => ({ workflow_id: wf.id, tag })),
    );
  }

  /** Takes: an id and, for a request, its namespace. Returns: the workflow (if it lives there), or null. */
  get(id: string, namespace?: string): Promise<WorkflowEntity | null> {
    return rowById(this.em, WorkflowEntity, 'workflow', id, namespace);
  }

  /** Takes: filters and a cursor. Returns: up to limit + 1 workflows, newest first. */
  async page(q: WorkflowPageQuery): Promise<WorkflowEntity[]> {
    const where: string[] = ['w.namespace = :ns'];
    if (q.state) where.push('w.state = :state');
    if (q.name) where.push('w.name = :name');
    if (q.tag) where.push('EXISTS (SELECT 1 FROM workflow_tag wt WHERE wt.workflow_id = w.id AND wt.tag = :tag)');
    if (q.before) where.push('(w.created_at < :c OR (w.created_at = :c AND w.id < :i))');
    const { rows } = await sql(
      this.em,
      `SELECT w.* FROM workflow w WHERE ${where.join(' AND ')} ORDER BY w.created_at DESC, w.id DESC LIMIT :lim`,
      {
        ns: q.namespace,
        state: q.state,
        name: q.name,
        tag: q.tag,
        c: q.before?.created_at,
        i: q.before?.id,
        lim: q.limit + 1,
      },
    );
    return rows.map((r) => hydrate(this.em, WorkflowEntity, r));
  }

  /**
   * Takes: a workflow id and, for a request, its namespace. Locks its row for the rest of
   * the transaction (PostgreSQL: FOR UPDATE; SQLite: its one writer is serialized in
   * process). Returns: the row, or null (also when it lives in another namespace).
   */
  async lock(id: string, namespace?: string): Promise<WorkflowEntity | null> {
    if (namespace === undefined) return (await this.lockWhere('WHERE id = :id', { id }))[0] ?? null;
    return (await this.lockWhere('WHERE id = :id AND namespace = :ns', { id, ns: namespace }))[0] ?? null;
  }

  /**
   * Takes: a workflow (its row, held under its lock), whether evaluations are left for
   * later, and where the walk through its waiting tasks stands ('' for the start). Writes
   * settle_pending and settle_after; the object follows its row.
   */
  async setSettle(wf: WorkflowEntity, pending: boolean, after: string): Promise<void> {
    await sql(this.em, 'UPDATE workflow SET settle_pending = :p, settle_after = :after WHERE id = :id', {
      id: wf.id,
      p: pending,
      after,
    });
    Object.assign(wf, { settle_pending: pending, settle_after: after });
  }

  /**
   * Takes: a workflow id and tags its tasks (or their handlers) run on ('' for an untagged
   * one). Writes those not yet recorded.
   */
  async addRunTags(id: string, tags: readonly string[]): Promise<void> {
    const all = [...new Set(tags)];
    for (let i = 0; i < all.length; i += 500) {
      const chunk = all.slice(i, i + 500);
      const values = chunk.map((_, j) => `(:id, :t${j})`).join(', ');
      const params = Object.fromEntries(chunk.map((tag, j) => [`t${j}`, tag]));
      await sql(
        this.em,
        `INSERT INTO workflow_run_tag (workflow_id, tag) VALUES ${values} ON CONFLICT (workflow_id, tag) DO NOTHING`,
        { id, ...params },
      );
    }
  }

  /** Takes: a workflow id. Returns: every tag a task of it (or a handler) runs on ('' for untagged), sorted. */
  async runTags(id: string): Promise<string[]> {
    const { rows } = await sql(this.em, 'SELECT tag FROM workflow_run_tag WHERE workflow_id = :id ORDER BY tag', {
      id,
    });
    return rows.map((r) => r.tag as string);
  }

  /** Takes: a bound. Returns: ids of workflows whose waiting tasks are still being evaluated. */
  async settlePending(limit: number): Promise<string[]> {
    const { rows } = await sql(this.em, 'SELECT id FROM workflow WHERE settle_pending = :yes ORDER BY id LIMIT :lim', {
      yes: true,
      lim: limit,
    });
    return rows.map((r) => r.id as string);
  }

  /**
   * Takes: the clock, the default retention in days and a bound. Returns: ids of finished
   * workflows whose retention is over, oldest finished first (the walk follows ix_workflow_finished).
   */
  async expired(now: number, defaultDays: number, limit: number): Promise<string[]> {
    const { rows } = await sql(
      this.em,
      `SELECT id FROM workflow WHERE finished_at IS NOT NULL AND finished_at < :now
          AND finished_at + CAST(COALESCE(retention_days, :dflt) AS BIGINT) * 86400000 < :now
        ORDER BY finished_at LIMIT :lim`,
      { now, dflt: defaultDays, lim: limit },
    );
    return rows.map((r) => r.id as string);
  }

  /** Takes: task ids. Locks the workflows they belong to, in id order (two replicas never wait in a circle). Returns: those rows. */
  async lockOfTasks(taskIds: readonly string[]): Promise<WorkflowEntity[]> {
    return this.lockWhere('WHERE id IN (SELECT t.workflow_id FROM task t WHERE t.id IN (:ids))', { ids: taskIds });
  }

  /** Takes: a workflow id. Deletes it and every row it owns. */
  async deleteWithEverything(id: string): Promise<void> {
    await this.flushEvents();
    for (const table of OWNED_TABLES) await sql(this.em, `DELETE FROM ${table} WHERE workflow_id = :id`, { id });
    await sql(this.em, 'DELETE FROM workflow WHERE id = :id', { id });
  }

  /**
   * With each row, whether any of its tasks selects a tag (`selects_tags`): one probe of the
   * dependency index's (workflow_id, kind) prefix, which spares each task's end a statement.
   */
  private async lockWhere(where: string, params: Record<string, unknown>): Promise<WorkflowEntity[]> {
    const { rows } = await sql(
      this.em,
      `SELECT workflow.*, EXISTS (SELECT 1 FROM task_dep d WHERE d.workflow_id = workflow.id AND d.kind = 'tag') AS selects_tags
         FROM workflow ${where} ORDER BY id${forUpdate(kindOf(this.em))}`,
      params,
    );
    return rows.map((r) =>
      Object.assign(hydrate(this.em, WorkflowEntity, r), { selects_tags: Boolean(r.selects_tags) }),
    );
  }
}
