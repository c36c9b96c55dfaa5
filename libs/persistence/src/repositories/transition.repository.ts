import type { EntityManager } from 'typeorm';
import {
  canChangeTaskFlag,
  canChangeWorkflowFlag,
  canTransitionTask,
  canTransitionWorkflow,
  isTerminalTask,
  isTerminalWorkflow,
  TASK_FLAGS,
  TASK_MARKS,
  type TaskFlag,
  type TaskState,
  type WorkflowFlag,
  type WorkflowState,
} from '@tagflow/domain';
import { TaskEntity } from '../entities/task.entity.js';
import { WorkflowEntity } from '../entities/workflow.entity.js';
import { claimRows, IN_CHUNK, kindOf, sql, updateEach, type ClaimJob, type StatementOptions } from '../dialect.js';
import { hydrate, persisted } from '../rows.js';
import { EventRepository, type NewTaskEvent } from './event.repository.js';
import { LimitRepository } from './limit.repository.js';

/** A change of state (`to`) and/or of side flags, for the tasks among `ids` still in one of `from`. */
export interface TaskChange {
  ids: readonly string[];
  from: readonly TaskState[];
  /** The new state; absent for a change of flags in place. */
  to?: TaskState;
  flags?: Partial<Record<TaskFlag, boolean>>;
  /** Other columns written with the change (never `state` or a flag: those are checked above). */
  set?: Partial<TaskEntity>;
  reason: string;
  /** Extra conditions: the attempt the caller saw, the queue it came from. */
  guard?: { attempt?: number; tagsetId?: string };
  /** For one task whose row the caller holds: its workflow and its attempt after the change (saves a read). */
  known?: { workflow_id: string; attempt: number };
}

type RowInfo = { state: TaskState; attempt: number; workflow_id: string };

/** The reason a lease's event gives. */
function leaseReason(workerId: string | null): string {
  return workerId ? `leased by worker ${workerId}` : 'leased';
}

/**
 * The one way a task's or a workflow's state or side flags change. Each change is
 * checked against the tables of libs/domain `states.ts`, applied by a guarded UPDATE
 * (`WHERE state IN (:from)`, so of two racing writers exactly one wins) and recorded as
 * an event row with its time.
 */
export class TransitionRepository {
  private readonly events: EventRepository;
  private readonly limits: LimitRepository;

  constructor(
    private readonly em: EntityManager,
    private readonly clock: () => number,
    events = new EventRepository(em),
    limits = new LimitRepository(em),
  ) {
    this.events = events;
    this.limits = limits;
  }

  private get now(): number {
    return this.clock();
  }

  /**
   * Takes: a TaskChange. Checks every (from, to) and flag against the state machine.
   * Returns: the ids that changed (the others had moved on). Events: one task_event row each.
   */
  async tasks(t: TaskChange): Promise<string[]> {
    checkTaskChange(t);
    const assign: Record<string, unknown> = { ...t.set, ...t.flags, updated_at: this.now };
    if (t.to) assign.state = t.to;
    // A task that leaves a mark's state loses the mark (held_limit also with the claim, dialect
    // claimRows), so a task coming back to that state never carries an old one.
    for (const [mark, state] of Object.entries(TASK_MARKS))
      if (t.to && t.to !== state && t.from.includes(state)) assign[mark] = null;
    if (t.to && isTerminalTask(t.to)) assign.finished_at = this.now;
    const sets = Object.keys(assign).map((p) => `${p} = :s_${p}`);
    const params = Object.fromEntries(
      Object.entries(assign).map(([p, v]) => [`s_${p}`, persisted(this.em, TaskEntity, p, v)]),
    );
    const guards: string[] = [];
    if (t.guard?.attempt !== undefined) guards.push('AND attempt = :g_attempt');
    if (t.guard?.tagsetId !== undefined) guards.push('AND tagset_id = :g_tagset');
    // A flag change in place counts only where the flag actually changes.
    if (!t.to && t.flags)
      guards.push(
        `AND (${Object.keys(t.flags)
          .map((f) => `${f} <> :s_${f}`)
          .join(' OR ')})`,
      );
    const update = `UPDATE task SET ${sets.join(', ')} WHERE id IN (:ids) AND state IN (:from) ${guards.join(' ')}`;
    const moved: string[] = [];
    // In slices (inChunks' size) rather than through it: each slice reads, writes and records events in turn.
    for (let i = 0; i < t.ids.length; i += IN_CHUNK) {
      const ids = t.ids.slice(i, i + IN_CHUNK);
      // Read first when several rows, several states it may leave, or a flag change in place:
      // the events name each row's state (a READY task cancelled is READY -> CANCELLED, not
      // the first state allowed), and a flag already at its value is no change (and gets no event).
      const oneRowOneState = ids.length === 1 && t.to && t.from.length === 1;
      const before = oneRowOneState ? null : await this.statesOf(ids, t.from, t.to ? undefined : t.flags);
      if (before && before.size === 0) continue;
      const candidates = before ? [...before.keys()] : ids;
      // One row, one state: the row as updated names its event's attempt (a retry's new one) and
      // workflow, read with the update itself instead of after it.
      const returning = oneRowOneState && !t.known;
      const { affected, rows } = await sql(this.em, returning ? `${update} RETURNING attempt, workflow_id` : update, {
        ...params,
        ids: candidates,
        from: t.from,
        g_attempt: t.guard?.attempt,
        g_tagset: t.guard?.tagsetId,
      });
      const updated =
        returning && rows.length === 1
          ? { workflow_id: rows[0].workflow_id as string, attempt: Number(rows[0].attempt) }
          : undefined;
      let movedNow: string[];
      if (affected === candidates.length) movedNow = candidates;
      else if (affected === 0) movedNow = [];
      else {
        // Some rows changed under us (a claim); read which are ours: in `to`, or with the flags now set.
        const after = await this.statesOf(candidates, t.to ? [t.to] : t.from);
        movedNow = t.to
          ? candidates.filter((id) => after.has(id))
          : await this.withFlags(
              candidates.filter((id) => after.has(id)),
              t.flags!,
            );
      }
      if (movedNow.length > 0) await this.record(movedNow, before, updated ? { ...t, known: updated } : t);
      moved.push(...movedNow);
    }
    return moved;
  }

  /**
   * Takes: tasks whose rows the caller holds under their workflows' locks, each with its
   * own values, all moving `from` -> `to` (a batch of reports). One UPDATE and one event
   * insert for them all; the task objects follow their rows. Throws unless every task was
   * still in `from`.
   */
  async each(
    from: TaskState,
    to: TaskState,
    items: readonly { task: TaskEntity; set: Partial<TaskEntity> }[],
    reason: string,
  ): Promise<void> {
    if (items.length === 0) return;
    checkTaskChange({ ids: [], from: [from], to, reason, set: items[0].set });
    const moved = { state: to, updated_at: this.now, ...(isTerminalTask(to) ? { finished_at: this.now } : {}) };
    const rows = items.map(({ task, set }) => ({ id: task.id, ...set, ...moved }));
    const changed = await updateEach(this.em, TaskEntity, rows, { state: from });
    if (changed !== items.length) {
      throw new Error(
        `${items.length - changed} of tasks ${items.map((i) => i.task.id).join(', ')} were not ${from} under their workflows' locks`,
      );
    }
    for (const { task, set } of items) Object.assign(task, set, moved);
    await this.events.addTaskEvents(
      items.map(({ task }) => ({
        task_id: task.id,
        workflow_id: task.workflow_id,
        from_state: from,
        to_state: to,
        attempt: task.attempt,
        reason,
        at: this.now,
      })),
    );
  }

  /**
   * Takes: jobs fetched from tag sets' queues. READY -> RUNNING under each job's own lease
   * token (see dialect `claimRows` for the guards), for the tasks whose concurrency limits
   * have room (LimitRepository.admit: the others are held). Returns: the tasks leased; a
   * job missing from the answer was stale or held. Events: one READY -> RUNNING row each.
   * `last`: the claim ends its transaction (StatementOptions), when it writes the events kept
   * (PostgreSQL): nothing else of the transaction is left to write.
   */
  async claim(fetched: readonly ClaimJob[], options: StatementOptions = {}): Promise<TaskEntity[]> {
    const jobs = await this.limits.admit(fetched);
    if (jobs.length === 0) return [];
    // PostgreSQL, events kept for the commit: the claim's statement writes them, and its own.
    const kept = kindOf(this.em) === 'postgres' ? this.events.takeKept() : null;
    const rows = await claimRows(
      this.em,
      this.now,
      jobs,
      kept && { before: kept, reasons: jobs.map((j) => leaseReason(j.workerId)) },
      { last: !!options.last && kept !== null },
    );
    const tasks = rows.map((r) => hydrate(this.em, TaskEntity, r));
    // The claim wrote each row's worker: its event's reason is the one the statement wrote.
    const leased: NewTaskEvent[] = tasks.map((t) => ({
      task_id: t.id,
      workflow_id: t.workflow_id,
      from_state: 'READY',
      to_state: 'RUNNING',
      attempt: t.attempt,
      reason: leaseReason(t.worker_id),
      at: this.now,
    }));
    if (kept) this.events.wroteWith(leased);
    else await this.events.addTaskEvents(leased);
    return tasks;
  }

  /**
   * Takes: a workflow (its row, held under its lock), the states it may be in, and a new
   * state and/or flags. Returns: false when it was no longer in `from`. The object
   * follows its row. Events: one workflow_event row.
   */
  async workflow(
    wf: WorkflowEntity,
    change: {
      from: readonly WorkflowState[];
      to?: WorkflowState;
      flags?: Partial<Record<WorkflowFlag, boolean>>;
      reason: string;
    },
  ): Promise<boolean> {
    const to = change.to ?? wf.state;
    for (const f of change.from) {
      if (change.to && !canTransitionWorkflow(f, change.to))
        throw new Error(`illegal workflow transition ${f} -> ${change.to}`);
      for (const flag of Object.keys(change.flags ?? {}) as WorkflowFlag[]) {
        if (!canChangeWorkflowFlag(flag, f)) throw new Error(`workflow flag ${flag} cannot change in ${f}`);
      }
    }
    if (!change.from.includes(wf.state)) return false;
    const assign: Partial<WorkflowEntity> = {
      ...change.flags,
      state: to,
      updated_at: this.now,
      ...(change.to && isTerminalWorkflow(change.to) ? { finished_at: this.now } : {}),
    };
    const sets = Object.keys(assign).map((p) => `${p} = :s_${p}`);
    const params = Object.fromEntries(
      Object.entries(assign).map(([p, v]) => [`s_${p}`, persisted(this.em, WorkflowEntity, p, v)]),
    );
    const { affected } = await sql(
      this.em,
      `UPDATE workflow SET ${sets.join(', ')} WHERE id = :id AND state IN (:from)`,
      { ...params, id: wf.id, from: change.from },
    );
    if (affected === 0) return false;
    await this.events.addWorkflowEvent({
      workflow_id: wf.id,
      from_state: wf.state,
      to_state: to,
      reason: change.reason,
      at: this.now,
    });
    Object.assign(wf, assign);
    return true;
  }

  /** The rows of `ids` in one of `states` (with `flags`: only those where a flag differs from its value). */
  private async statesOf(
    ids: readonly string[],
    states: readonly TaskState[],
    flags?: Partial<Record<TaskFlag, boolean>>,
  ): Promise<Map<string, RowInfo>> {
    const differs = flags
      ? ` AND (${Object.keys(flags)
          .map((f) => `${f} <> :f_${f}`)
          .join(' OR ')})`
      : '';
    const params = Object.fromEntries(Object.entries(flags ?? {}).map(([f, v]) => [`f_${f}`, v]));
    const { rows } = await sql(
      this.em,
      `SELECT id, state, attempt, workflow_id FROM task WHERE id IN (:ids) AND state IN (:states)${differs}`,
      { ids, states, ...params },
    );
    return new Map(
      rows.map((r) => [
        r.id as string,
        { state: r.state as TaskState, attempt: Number(r.attempt), workflow_id: r.workflow_id as string },
      ]),
    );
  }

  private async withFlags(ids: string[], flags: Partial<Record<TaskFlag, boolean>>): Promise<string[]> {
    if (ids.length === 0) return [];
    const { rows } = await sql(this.em, 'SELECT * FROM task WHERE id IN (:ids)', { ids });
    return rows
      .map((r) => hydrate(this.em, TaskEntity, r))
      .filter((t) => Object.entries(flags).every(([f, v]) => t[f as TaskFlag] === v))
      .map((t) => t.id);
  }

  private async record(ids: string[], before: Map<string, RowInfo> | null, t: TaskChange): Promise<void> {
    const info =
      before ??
      (t.known && ids.length === 1
        ? new Map([[ids[0], { state: t.to!, attempt: t.known.attempt, workflow_id: t.known.workflow_id }]])
        : await this.statesOf(ids, [t.to!]));
    const events: NewTaskEvent[] = ids.map((id) => {
      const row = info.get(id);
      return {
        task_id: id,
        workflow_id: row?.workflow_id ?? '',
        from_state: before ? (row?.state ?? null) : t.from[0],
        to_state: t.to ?? row?.state ?? t.from[0],
        // A single-row change reads the row after the update: a retry records its new attempt.
        attempt: row?.attempt ?? 0,
        reason: t.reason,
        at: this.now,
      };
    });
    await this.events.addTaskEvents(events);
  }
}

/** Every (from, to) of a change, and every flag it sets, must be allowed by the state machine. */
function checkTaskChange(t: TaskChange): void {
  for (const key of Object.keys(t.set ?? {})) {
    if (key === 'state' || key in TASK_FLAGS)
      throw new Error(`${key} changes only as a transition's state or flag, not through set`);
  }
  for (const from of t.from) {
    const to = t.to ?? from;
    if (t.to && !canTransitionTask(from, t.to)) throw new Error(`illegal task transition ${from} -> ${t.to}`);
    for (const flag of Object.keys(t.flags ?? {}) as TaskFlag[]) {
      if (!canChangeTaskFlag(flag, from, to)) throw new Error(`task flag ${flag} cannot change in ${from} -> ${to}`);
    }
  }
  if (!t.to && !t.flags) throw new Error('a task change needs a new state or flags');
}
