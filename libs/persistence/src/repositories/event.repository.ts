import type { EntityManager } from 'typeorm';
import { TaskEventEntity } from '../entities/task.entity.js';
import { WorkflowEventEntity } from '../entities/workflow.entity.js';
import { insertRows, kindOf, sql, type StatementOptions } from '../dialect.js';
import { hydrate } from '../rows.js';

export type NewTaskEvent = Omit<TaskEventEntity, 'id'>;
/** Where a follower of a workflow's events is in one table: the last event's transaction and id. */
export interface EventPlace {
  tx: number;
  id: number;
}
export type NewWorkflowEvent = Omit<WorkflowEventEntity, 'id'>;

/**
 * PostgreSQL: a transaction id below which every transaction that could write this
 * database's events has ended: the oldest one still running, leaving out those known to run
 * in another database (a pg_dump of another application's database on the same server, or
 * another of Tagflow's databases, holds no stream back; every role sees every session's
 * database and transaction id). A prepared transaction, which no session lists, counts, as
 * does one that ended between the snapshot and the read of pg_stat_activity: both only make
 * a follower wait longer, never skip. (On a hot standby the snapshot lists no running
 * transactions: streams are read from the primary.) A subquery of each read, so it costs no
 * round trip of its own.
 */
const SETTLED_BELOW = `(SELECT COALESCE(
    (SELECT MIN(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) x
      WHERE (x::text::bigint % 4294967296) NOT IN (
        SELECT backend_xid::text::bigint FROM pg_stat_activity
         WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database())),
    pg_snapshot_xmax(pg_current_snapshot())::text::bigint))`;

/** The history: one task_event row per task transition, one workflow_event row per workflow one. */
export class EventRepository {
  /** Task events not written yet (a transaction's, when it defers them), oldest first. */
  private readonly pending: NewTaskEvent[] | null;
  /** A transaction's: per workflow, the tasks its events last left READY or RUNNING (see `leftOpen`). */
  private readonly open = new Map<string, Set<string>>();

  /**
   * `defer`: task events are kept and written by `flush` (Database.transaction, before it
   * commits) in one statement, instead of one per transition: a report that completes a task,
   * makes the next READY and leases it wrote three. Reads of events here flush first.
   */
  constructor(
    private readonly em: EntityManager,
    defer = false,
  ) {
    this.pending = defer ? [] : null;
  }

  /** Takes: task events. Writes them (one statement for all), or keeps them for `flush`. */
  async addTaskEvents(events: readonly NewTaskEvent[]): Promise<void> {
    if (!this.pending) return insertRows(this.em, TaskEventEntity, events);
    this.pending.push(...events);
    this.track(events);
  }

  /**
   * For a statement that writes task events with its own work (PostgreSQL's claim, dialect
   * `claimWithEvents`), in a transaction that keeps them: the events kept so far, oldest
   * first, handed over (null when this repository writes events at once). The statement
   * writes them, then its own, which `wroteWith` is told of.
   */
  takeKept(): NewTaskEvent[] | null {
    return this.pending ? this.pending.splice(0) : null;
  }

  /** Task events a statement wrote after those `takeKept` gave it: as if added here (see `leftOpen`). */
  wroteWith(events: readonly NewTaskEvent[]): void {
    this.track(events);
  }

  private track(events: readonly NewTaskEvent[]): void {
    for (const e of events) {
      const open = this.open.get(e.workflow_id) ?? this.open.set(e.workflow_id, new Set()).get(e.workflow_id)!;
      if (e.to_state === 'READY' || e.to_state === 'RUNNING') open.add(e.task_id);
      else open.delete(e.task_id);
    }
  }

  /**
   * Takes: a workflow id. Returns: whether this transaction (one that defers its events) left
   * a task of it READY or RUNNING. Such a task still is: every state change writes an event,
   * and no other transaction can move a row this one wrote before it commits. False says
   * nothing (a task may be open without this transaction having moved it).
   */
  leftOpen(workflowId: string): boolean {
    return (this.open.get(workflowId)?.size ?? 0) > 0;
  }

  /**
   * Writes the task events kept so far, in their order; `last`: as the transaction's last
   * statement (StatementOptions), which Database.transaction's own flush is.
   */
  async flush(options: StatementOptions = {}): Promise<void> {
    if (this.pending && this.pending.length > 0)
      await insertRows(this.em, TaskEventEntity, this.pending.splice(0), options);
  }

  /** Takes: a workflow event. Writes it. */
  async addWorkflowEvent(event: NewWorkflowEvent): Promise<void> {
    await insertRows(this.em, WorkflowEventEntity, [event]);
  }

  /** Takes: a task id. Returns: its events, oldest first. */
  async ofTask(taskId: string): Promise<TaskEventEntity[]> {
    await this.flush();
    const { rows } = await sql(this.em, 'SELECT * FROM task_event WHERE task_id = :id ORDER BY id', { id: taskId });
    return rows.map((r) => hydrate(this.em, TaskEventEntity, r));
  }

  /** Takes: a workflow id. Returns: its own events (state and flag changes), oldest first. */
  async ofWorkflow(workflowId: string): Promise<WorkflowEventEntity[]> {
    const { rows } = await sql(this.em, 'SELECT * FROM workflow_event WHERE workflow_id = :id ORDER BY id', {
      id: workflowId,
    });
    return rows.map((r) => hydrate(this.em, WorkflowEventEntity, r));
  }

  /**
   * Takes: a workflow id, the last task event and workflow event already seen (each as
   * its transaction and id), a limit. Returns: up to `limit` of each that came after, in
   * (transaction, id) order, only from transactions older than every one still running
   * in this database (see migration 15 and SETTLED_BELOW): an event read later can never
   * sort before one read now. Task
   * events come with their task's name and each event with its `tx`.
   */
  async streamOf(
    workflowId: string,
    afterTask: EventPlace,
    afterWorkflow: EventPlace,
    limit: number,
  ): Promise<{
    tasks: (TaskEventEntity & { name: string | null; tx: number })[];
    workflow: (WorkflowEventEntity & { tx: number })[];
  }> {
    await this.flush();
    const n = Math.floor(limit);
    const settled = kindOf(this.em) === 'postgres' ? ` AND e.tx < ${SETTLED_BELOW}` : '';
    const after = (p: EventPlace) => ({ wf: workflowId, tx: p.tx, id: p.id });
    const t = await sql(
      this.em,
      `SELECT e.*, t.name AS task_name FROM task_event e LEFT JOIN task t ON t.id = e.task_id
        WHERE e.workflow_id = :wf AND (e.tx > :tx OR (e.tx = :tx AND e.id > :id))${settled} ORDER BY e.tx, e.id LIMIT ${n}`,
      after(afterTask),
    );
    const w = await sql(
      this.em,
      `SELECT e.* FROM workflow_event e WHERE e.workflow_id = :wf AND (e.tx > :tx OR (e.tx = :tx AND e.id > :id))${settled} ORDER BY e.tx, e.id LIMIT ${n}`,
      after(afterWorkflow),
    );
    return {
      tasks: t.rows.map((r) =>
        Object.assign(hydrate(this.em, TaskEventEntity, r), {
          name: (r.task_name as string | null) ?? null,
          tx: Number(r.tx),
        }),
      ),
      workflow: w.rows.map((r) => Object.assign(hydrate(this.em, WorkflowEventEntity, r), { tx: Number(r.tx) })),
    };
  }

  /** Takes: a task id. Deletes its events. */
  async deleteOfTask(taskId: string): Promise<void> {
    await this.flush();
    await sql(this.em, 'DELETE FROM task_event WHERE task_id = :id', { id: taskId });
  }
}
