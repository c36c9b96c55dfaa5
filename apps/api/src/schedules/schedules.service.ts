import { Inject, Injectable } from '@nestjs/common';
import { isoOrNull, isTerminalWorkflow, LIMITS, newId } from '@tagflow/domain';
import { Database, type CreatedBy, type JsonObject, type ScheduleRow, type ScheduleRunRow } from '@tagflow/persistence';
import { checkWorkflowTasks, CreateWorkflowDto, validateAs } from '@tagflow/spec';
import type { Schedule } from '@tagflow/client';
import { ApiError, badRequest, conflict, notFound, unprocessable } from '../common/errors.js';
import { JsonLogger } from '../common/logger.js';
import { AppConfig } from '../config/app-config.js';
import { createWorkflow } from '../engine/control.js';
import { Engine } from '../engine/engine.js';
import type { UnitOfWork } from '../engine/unit-of-work.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { newWorkflowRow } from '../workflows/workflows.service.js';
import { withoutSecrets } from '../tasks/task.mapper.js';
import { CronSchedule, cronProblem } from './cron.js';
import type { CreateScheduleDto } from './schedule.dto.js';

/** Schedules acted on per reconciler tick at most (the rest on the next). */
const DUE_PER_TICK = 100;
/** How long one reconciler tick spends creating schedules' workflows at most. */
const FIRE_BUDGET_MS = 1000;
/** Runs shown with a schedule. */
const RUNS_SHOWN = 20;

type RunResult = Omit<ScheduleRunRow, 'schedule_id' | 'tick' | 'at'>;

/**
 * Schedules (`/v1/schedules`): a workflow spec created on each tick of a cron expression
 * in a time zone. Any replica may act on a due tick (each reconciler tick): the schedule's
 * row is locked and the tick's `schedule_run` row inserted in the transaction that creates
 * the workflow, so a tick makes one workflow however many replicas run. Ticks missed while
 * no API ran are not replayed: the latest one runs, once. `overlap: skip` records a tick
 * as skipped while the workflow of the previous run is unfinished.
 */
@Injectable()
export class SchedulesService {
  private readonly runs: (labels?: Record<string, string>) => void;

  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
    private readonly config: AppConfig,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    metrics: MetricsService,
  ) {
    this.runs = metrics.counter(
      'tagflow_schedule_runs_total',
      'Schedule ticks acted on, by outcome (created, skipped, failed).',
    );
  }

  async create(dto: CreateScheduleDto, createdBy: CreatedBy | null, namespace: string): Promise<Schedule> {
    const timezone = dto.timezone ?? 'UTC';
    const problem = cronProblem(dto.cron, timezone, this.config.SCHEDULE_MIN_INTERVAL_S);
    if (problem) throw badRequest(problem.message, [{ field: problem.field, errors: [problem.message] }]);
    const checks = checkWorkflowTasks(dto.workflow.tasks ?? []).map((e) => ({ ...e, field: `workflow.${e.field}` }));
    if (checks.length > 0) throw unprocessable(`${checks[0].field}: ${checks[0].errors[0]}`, checks);
    const now = this.db.now();
    const row: ScheduleRow = {
      id: newId(now),
      namespace,
      name: dto.name,
      cron: dto.cron,
      timezone,
      overlap: dto.overlap ?? 'skip',
      workflow: JSON.parse(JSON.stringify(dto.workflow)) as JsonObject,
      paused: false,
      paused_reason: null,
      next_run_at: new CronSchedule(dto.cron, timezone).next(now),
      last_run_at: null,
      last_workflow_id: null,
      created_by: createdBy,
      owner_key_id: createdBy?.key_id ?? null,
      created_at: now,
      updated_at: now,
    };
    const created = await this.db.transaction(async (repos) => {
      if ((await repos.schedules.count(namespace)) >= LIMITS.schedulesPerNamespace) {
        throw unprocessable(
          `namespace ${namespace} already has ${LIMITS.schedulesPerNamespace} schedules, the most it may have`,
        );
      }
      return repos.schedules.insert(row);
    }, now);
    if (!created) throw conflict(`a schedule named ${dto.name} already exists in namespace ${namespace}`);
    return this.view(row.id, namespace);
  }

  /** The schedule (404 unless it lives in `namespace`). */
  async find(id: string, namespace: string): Promise<ScheduleRow> {
    const s = await this.db.read().schedules.get(id, namespace);
    if (!s) throw notFound('schedule', id);
    return s;
  }

  async view(id: string, namespace: string): Promise<Schedule> {
    const s = await this.find(id, namespace);
    return toScheduleResponse(s, await this.db.read().schedules.runs(id, RUNS_SHOWN));
  }

  async list(
    namespace: string,
    cursor: string | undefined,
    limit: number,
  ): Promise<{ items: Schedule[]; next_cursor: string | null }> {
    const after = cursor ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
    if (after.length > LIMITS.nameMaxLength)
      throw badRequest('cursor is not a cursor this API returned', [{ field: 'cursor', errors: ['invalid cursor'] }]);
    const rows = await this.db.read().schedules.list(namespace, after, limit + 1);
    const items = rows.slice(0, limit);
    return {
      items: items.map((s) => toScheduleResponse(s)),
      next_cursor: rows.length > limit ? Buffer.from(items[items.length - 1].name).toString('base64url') : null,
    };
  }

  async remove(id: string, namespace: string): Promise<void> {
    await this.find(id, namespace);
    await this.db.transaction((repos) => repos.schedules.remove(id));
  }

  /** Paused: no tick acts until it is resumed. */
  async pause(id: string, namespace: string): Promise<Schedule> {
    await this.find(id, namespace);
    await this.db.transaction((repos) => repos.schedules.setState(id, true, null, this.db.now()));
    return this.view(id, namespace);
  }

  /**
   * Resumed: from the next tick after now (ticks while paused are not made up), acting from
   * now on with the resuming key (`by`), whose grants the caller has checked.
   */
  async resume(id: string, namespace: string, by: CreatedBy | null): Promise<Schedule> {
    const s = await this.find(id, namespace);
    const now = this.db.now();
    if (s.paused)
      await this.db.transaction((repos) =>
        repos.schedules.resumeAs(id, by, new CronSchedule(s.cron, s.timezone).next(now), now),
      );
    return this.view(id, namespace);
  }

  /**
   * Pauses the schedules whose owner's key was revoked or expired (a schedule acts with its
   * owner's key: it may not outlive it), each recorded in the audit log with why. Called at
   * each revocation and each reconciler tick. Returns: how many were paused.
   */
  async pauseOwnerless(): Promise<number> {
    const now = this.db.now();
    const found = await this.db.read().schedules.ownerless(now, DUE_PER_TICK);
    for (const o of found) {
      const reason = `paused: ${o.why}`;
      await this.db.transaction(async (repos) => {
        await repos.schedules.setState(o.id, true, null, now, reason);
        await repos.audit.add({
          at: now,
          key_id: o.owner_key_id,
          key_name: reason.slice(0, 128),
          namespace: o.namespace,
          method: 'POST',
          path: `/v1/schedules/${o.id}/pause`,
          status: 200,
          resource_id: o.id,
        });
      }, now);
      this.logger.event('warn', 'schedules', "schedule paused: its owner's key can no longer act", {
        schedule_id: o.id,
        reason: o.why,
      });
    }
    return found.length;
  }

  /**
   * One run now, outside the cron (its next tick stays). With `overlap: skip`, 409 while the
   * previous run's workflow is unfinished. Returns: the workflow's id.
   */
  async trigger(id: string, namespace: string, by: CreatedBy | null): Promise<string> {
    await this.find(id, namespace);
    const made = await this.engine.inTransaction(async (uow) => {
      const s = await uow.repos.schedules.get(id, namespace, true);
      if (!s) throw notFound('schedule', id);
      const tick = uow.now;
      if (!(await uow.repos.schedules.claimTick(s.id, tick, uow.now)))
        throw conflict(`schedule ${s.name} ran at this very millisecond; trigger it again`);
      // Made by the key that asked for it (its grants checked by the caller), not the owner's.
      const run = await this.runOnce(uow, { ...s, created_by: by }, tick);
      if (run.outcome === 'skipped') throw conflict(`schedule ${s.name}: ${run.message}`);
      if (run.outcome === 'failed') throw unprocessable(`schedule ${s.name}: ${run.message}`);
      await uow.repos.schedules.recordRun({ schedule_id: s.id, tick, ...run });
      await uow.repos.schedules.ran(s.id, tick, run.workflow_id, s.next_run_at, uow.now);
      return run.workflow_id!;
    });
    this.runs({ outcome: 'created' });
    return made;
  }

  /** Acts on every schedule whose tick has come (the reconciler calls this each tick), once those whose owner's key ended are paused. */
  async fireDue(): Promise<void> {
    await this.pauseOwnerless();
    const ids = await this.db.read().schedules.due(this.db.now(), DUE_PER_TICK);
    const started = Date.now();
    for (const id of ids) {
      // The reconciler waits for this: the rest of a burst waits for its next tick.
      if (Date.now() - started > FIRE_BUDGET_MS) break;
      await this.fire(id).catch((e: unknown) =>
        this.logger.event('warn', 'schedules', 'could not act on a schedule tick; trying again on the next', {
          schedule_id: id,
          error: String(e),
        }),
      );
    }
  }

  /**
   * A due tick: the latest one at or before now (earlier ones missed while no API ran are
   * not replayed), claimed, run, and the next tick set, in one transaction. A workflow spec
   * the API refuses at this point (a 4xx) is recorded as a failed run; the schedule goes on.
   */
  private async fire(id: string): Promise<void> {
    const act = (make: (uow: UnitOfWork, s: ScheduleRow, tick: number) => Promise<RunResult>) =>
      this.engine.inTransaction(async (uow) => {
        // Another replica acting on it: left to that one.
        const s = await uow.repos.schedules.get(id, undefined, 'skip');
        if (!s || s.paused || s.next_run_at === null || s.next_run_at > uow.now) return null;
        // Its owner's key ended since pauseOwnerless looked: paused at the next look, never run with it.
        if (s.owner_key_id && !(await ownerLive(uow, s.owner_key_id))) return null;
        const cron = new CronSchedule(s.cron, s.timezone);
        const tick = Math.max(cron.latest(uow.now) ?? s.next_run_at, s.next_run_at);
        const next = cron.next(Math.max(uow.now, tick));
        if (!(await uow.repos.schedules.claimTick(s.id, tick, uow.now))) {
          await uow.repos.schedules.ran(s.id, tick, null, next, uow.now);
          return null;
        }
        const run = await make(uow, s, tick);
        await uow.repos.schedules.recordRun({ schedule_id: s.id, tick, ...run });
        await uow.repos.schedules.ran(s.id, tick, run.workflow_id, next, uow.now);
        return run;
      });
    let run: RunResult | null;
    try {
      run = await act((uow, s, tick) => this.runOnce(uow, s, tick));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      const said = (e.getResponse() as { message?: unknown }).message;
      const message = typeof said === 'string' ? said : e.message;
      run = await act(() => Promise.resolve({ outcome: 'failed' as const, workflow_id: null, message }));
      this.logger.event('warn', 'schedules', 'a schedule tick could not create its workflow', {
        schedule_id: id,
        error: message,
      });
    }
    if (run) this.runs({ outcome: run.outcome });
  }

  /** Creates the tick's workflow (`scheduled_at` merged into its input), or skips it while the previous run is unfinished. */
  private async runOnce(uow: UnitOfWork, s: ScheduleRow, tick: number): Promise<RunResult> {
    if (s.overlap === 'skip' && s.last_workflow_id) {
      const previous = await uow.repos.workflows.get(s.last_workflow_id);
      if (previous && !isTerminalWorkflow(previous.state)) {
        return {
          outcome: 'skipped',
          workflow_id: null,
          message: `the previous run, workflow ${previous.id}, is still ${previous.state}`,
        };
      }
    }
    const { value: spec, errors } = await validateAs(CreateWorkflowDto, s.workflow, 'workflow');
    if (!spec)
      return {
        outcome: 'failed',
        workflow_id: null,
        message: `the workflow spec is no longer valid: ${errors.map((e) => `${e.field}: ${e.errors.join(', ')}`).join('; ')}`,
      };
    const wf = newWorkflowRow(spec, s.created_by, s.namespace, uow.now);
    wf.input = { ...wf.input, scheduled_at: new Date(tick).toISOString() };
    await createWorkflow(uow, wf, spec.tasks ?? []);
    return { outcome: 'created', workflow_id: wf.id, message: null };
  }
}

async function ownerLive(uow: UnitOfWork, keyId: string): Promise<boolean> {
  const key = await uow.repos.keys.get(keyId);
  return !!key && key.revoked_at === null && (key.expires_at === null || key.expires_at > uow.now);
}

export function toScheduleResponse(s: ScheduleRow, runs?: readonly ScheduleRunRow[]): Schedule {
  return {
    id: s.id,
    name: s.name,
    namespace: s.namespace,
    cron: s.cron,
    timezone: s.timezone,
    overlap: s.overlap,
    paused: s.paused,
    paused_reason: s.paused_reason,
    workflow: withoutSecrets(s.workflow),
    next_run_at: isoOrNull(s.next_run_at),
    last_run_at: isoOrNull(s.last_run_at),
    last_workflow_id: s.last_workflow_id,
    created_by: s.created_by,
    created_at: isoOrNull(s.created_at)!,
    updated_at: isoOrNull(s.updated_at)!,
    ...(runs
      ? {
          runs: runs.map((r) => ({
            tick: new Date(r.tick).toISOString(),
            outcome: r.outcome,
            workflow_id: r.workflow_id,
            message: r.message,
            at: new Date(r.at).toISOString(),
          })),
        }
      : {}),
  };
}
