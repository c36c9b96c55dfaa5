import type { EntityManager } from 'typeorm';
import type { CreatedBy } from '../entities/audit.entity.js';
import type { JsonObject } from '../entities/columns.js';
import { forUpdate, kindOf, sql } from '../dialect.js';

export type Overlap = 'skip' | 'allow';

export interface ScheduleRow {
  id: string;
  namespace: string;
  name: string;
  cron: string;
  timezone: string;
  overlap: Overlap;
  /** The workflow spec each tick creates (as `POST /v1/workflows` takes it). */
  workflow: JsonObject;
  paused: boolean;
  /** Why it is paused when the API paused it (its owner's key was revoked or expired); null otherwise. */
  paused_reason: string | null;
  /** The next tick to act on; null while paused. */
  next_run_at: number | null;
  last_run_at: number | null;
  last_workflow_id: string | null;
  created_by: CreatedBy | null;
  /** The key it acts with: the one that created or last resumed it (null in the open mode). */
  owner_key_id: string | null;
  created_at: number;
  updated_at: number;
}

export type RunOutcome = 'created' | 'skipped' | 'failed';

export interface ScheduleRunRow {
  schedule_id: string;
  tick: number;
  outcome: RunOutcome;
  workflow_id: string | null;
  message: string | null;
  at: number;
}

/** Runs kept per schedule (the oldest go as new ones come). */
const RUNS_KEPT = 100;

function scheduleRow(r: Record<string, unknown>): ScheduleRow {
  const ms = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    id: r.id as string,
    namespace: r.namespace as string,
    name: r.name as string,
    cron: r.cron as string,
    timezone: r.timezone as string,
    overlap: r.overlap as Overlap,
    workflow: JSON.parse(r.workflow as string) as JsonObject,
    paused: r.paused === true || r.paused === 1,
    paused_reason: (r.paused_reason as string | null) ?? null,
    owner_key_id: (r.owner_key_id as string | null) ?? null,
    next_run_at: ms(r.next_run_at),
    last_run_at: ms(r.last_run_at),
    last_workflow_id: (r.last_workflow_id as string | null) ?? null,
    created_by: r.created_by ? (JSON.parse(r.created_by as string) as CreatedBy) : null,
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
  };
}

function runRow(r: Record<string, unknown>): ScheduleRunRow {
  return {
    schedule_id: r.schedule_id as string,
    tick: Number(r.tick),
    outcome: r.outcome as RunOutcome,
    workflow_id: (r.workflow_id as string | null) ?? null,
    message: (r.message as string | null) ?? null,
    at: Number(r.at),
  };
}

/** Schedules and their runs. */
export class ScheduleRepository {
  constructor(private readonly em: EntityManager) {}

  /** Takes: a new schedule. Returns: false when its namespace already has one of that name. */
  async insert(s: ScheduleRow): Promise<boolean> {
    const { affected } = await sql(
      this.em,
      `INSERT INTO schedule (id, namespace, name, cron, timezone, overlap, workflow, paused, next_run_at, last_run_at, last_workflow_id, created_by, owner_key_id, created_at, updated_at)
       VALUES (:id, :ns, :name, :cron, :tz, :overlap, :workflow, :paused, :next, NULL, NULL, :by, :owner, :now, :now)
       ON CONFLICT (namespace, name) DO NOTHING`,
      {
        id: s.id,
        ns: s.namespace,
        name: s.name,
        cron: s.cron,
        tz: s.timezone,
        overlap: s.overlap,
        workflow: JSON.stringify(s.workflow),
        paused: s.paused,
        next: s.next_run_at,
        by: s.created_by ? JSON.stringify(s.created_by) : null,
        owner: s.owner_key_id,
        now: s.created_at,
      },
    );
    return affected > 0;
  }

  /**
   * Takes: an id, and for a request its namespace; `lock` holds the row (PostgreSQL) to the end
   * of the transaction, 'skip' answers null at once when another transaction holds it.
   */
  async get(id: string, namespace?: string, lock: boolean | 'skip' = false): Promise<ScheduleRow | null> {
    const where = namespace === undefined ? '' : ' AND namespace = :ns';
    const pg = kindOf(this.em) === 'postgres';
    const locking = lock ? `${forUpdate(kindOf(this.em))}${lock === 'skip' && pg ? ' SKIP LOCKED' : ''}` : '';
    const { rows } = await sql(this.em, `SELECT * FROM schedule WHERE id = :id${where}${locking}`, {
      id,
      ns: namespace,
    });
    return rows.length ? scheduleRow(rows[0]) : null;
  }

  /** Returns: a namespace's schedules by name, after `after`, at most `limit`. */
  async list(namespace: string, after: string, limit: number): Promise<ScheduleRow[]> {
    const { rows } = await sql(
      this.em,
      'SELECT * FROM schedule WHERE namespace = :ns AND name > :after ORDER BY name LIMIT :lim',
      { ns: namespace, after, lim: limit },
    );
    return rows.map(scheduleRow);
  }

  async count(namespace: string): Promise<number> {
    const { rows } = await sql(this.em, 'SELECT COUNT(*) AS n FROM schedule WHERE namespace = :ns', { ns: namespace });
    return Number(rows[0].n);
  }

  /** Returns: ids of schedules not paused whose next tick has come, soonest first. */
  async due(now: number, limit: number): Promise<string[]> {
    const { rows } = await sql(
      this.em,
      'SELECT id FROM schedule WHERE next_run_at IS NOT NULL AND next_run_at <= :now ORDER BY next_run_at LIMIT :lim',
      { now, lim: limit },
    );
    return rows.map((r) => r.id as string);
  }

  /** Sets paused (why, when the API paused it) and the next tick (null while paused). */
  async setState(
    id: string,
    paused: boolean,
    next: number | null,
    now: number,
    reason: string | null = null,
  ): Promise<void> {
    await sql(
      this.em,
      'UPDATE schedule SET paused = :paused, paused_reason = :reason, next_run_at = :next, updated_at = :now WHERE id = :id',
      { id, paused, reason, next, now },
    );
  }

  /** Takes: a schedule, who resumes it, and its next tick. It is running again, owned by that key. */
  async resumeAs(id: string, by: CreatedBy | null, next: number | null, now: number): Promise<void> {
    await sql(
      this.em,
      'UPDATE schedule SET paused = :no, paused_reason = NULL, next_run_at = :next, created_by = :by, owner_key_id = :owner, updated_at = :now WHERE id = :id',
      {
        id,
        no: false,
        next,
        by: by ? JSON.stringify(by) : null,
        owner: by?.key_id ?? null,
        now,
      },
    );
  }

  /**
   * Takes: the clock and a bound. Returns: schedules not paused whose owner's key was
   * revoked, expired or is gone, with why.
   */
  async ownerless(
    now: number,
    limit: number,
  ): Promise<{ id: string; namespace: string; owner_key_id: string; why: string }[]> {
    const { rows } = await sql(
      this.em,
      `SELECT s.id, s.namespace, s.owner_key_id, k.name AS key_name, k.revoked_at, k.expires_at FROM schedule s LEFT JOIN api_key k ON k.id = s.owner_key_id
       WHERE s.paused = :no AND s.owner_key_id IS NOT NULL AND (k.id IS NULL OR k.revoked_at IS NOT NULL OR k.expires_at <= :now) ORDER BY s.id LIMIT :lim`,
      { no: false, now, lim: limit },
    );
    return rows.map((r) => {
      const name = (r.key_name as string | null) ?? String(r.owner_key_id);
      const why =
        r.key_name === null
          ? `its owner's key ${name} no longer exists`
          : r.revoked_at !== null
            ? `its owner's key ${name} was revoked`
            : `its owner's key ${name} expired`;
      return { id: r.id as string, namespace: r.namespace as string, owner_key_id: r.owner_key_id as string, why };
    });
  }

  /** After a tick was acted on: the next one, and what this one made. */
  async ran(id: string, tick: number, workflowId: string | null, next: number | null, now: number): Promise<void> {
    const made = workflowId ? ', last_workflow_id = :wf' : '';
    await sql(
      this.em,
      `UPDATE schedule SET next_run_at = :next, last_run_at = :tick${made}, updated_at = :now WHERE id = :id`,
      { id, tick, wf: workflowId, next, now },
    );
  }

  async remove(id: string): Promise<void> {
    await sql(this.em, 'DELETE FROM schedule_run WHERE schedule_id = :id', { id });
    await sql(this.em, 'DELETE FROM schedule WHERE id = :id', { id });
  }

  /**
   * Claims a tick: inserts its run row. Returns: false when the row exists (another replica,
   * or an earlier attempt, acted on that tick): the caller does nothing.
   */
  async claimTick(scheduleId: string, tick: number, now: number): Promise<boolean> {
    const { affected } = await sql(
      this.em,
      `INSERT INTO schedule_run (schedule_id, tick, outcome, workflow_id, message, at) VALUES (:id, :tick, 'created', NULL, NULL, :now) ON CONFLICT (schedule_id, tick) DO NOTHING`,
      { id: scheduleId, tick, now },
    );
    return affected > 0;
  }

  /** Records what a claimed tick came to, and keeps the newest RUNS_KEPT runs. */
  async recordRun(run: Omit<ScheduleRunRow, 'at'>): Promise<void> {
    await sql(
      this.em,
      'UPDATE schedule_run SET outcome = :outcome, workflow_id = :wf, message = :msg WHERE schedule_id = :id AND tick = :tick',
      {
        id: run.schedule_id,
        tick: run.tick,
        outcome: run.outcome,
        wf: run.workflow_id,
        msg: run.message,
      },
    );
    const { rows } = await sql(
      this.em,
      'SELECT tick FROM schedule_run WHERE schedule_id = :id ORDER BY tick DESC LIMIT 1 OFFSET :keep',
      { id: run.schedule_id, keep: RUNS_KEPT },
    );
    if (rows.length)
      await sql(this.em, 'DELETE FROM schedule_run WHERE schedule_id = :id AND tick <= :tick', {
        id: run.schedule_id,
        tick: Number(rows[0].tick),
      });
  }

  /** Returns: a schedule's runs, newest first, at most `limit`. */
  async runs(scheduleId: string, limit: number): Promise<ScheduleRunRow[]> {
    const { rows } = await sql(
      this.em,
      'SELECT * FROM schedule_run WHERE schedule_id = :id ORDER BY tick DESC LIMIT :lim',
      { id: scheduleId, lim: limit },
    );
    return rows.map(runRow);
  }
}
