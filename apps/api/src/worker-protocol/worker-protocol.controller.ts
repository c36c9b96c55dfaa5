import { Body, Controller, HttpCode, Param, Post, Res } from '@nestjs/common';
import type { HttpReply, HttpRequest } from '../common/http.js';
import { ApiTags } from '@nestjs/swagger';
import { LIMITS } from '@tagflow/domain';
import { idParam } from '../common/params.js';
import { toTaskResponse } from '../tasks/task.mapper.js';
import { WorkersService } from '../workers/workers.service.js';
import { LeaseService } from './lease.service.js';
import { PollService } from './poll.service.js';
import { LongWait, unlessNoWait, WaitPermitOf, type WaitPermit } from '../long-wait/wait-limit.interceptor.js';
import { badRequest, itemRefusal } from '../common/errors.js';
import {
  CompleteDto,
  FailDto,
  HeartbeatDto,
  PollDto,
  ReportAndPollDto,
  type BatchReportDto,
} from './worker-protocol.dto.js';
import { Allow, CallerOf, NamespaceOf, namespaceOf, WORKERS, type Caller } from '../auth/access.js';
import { checkPollGrants } from '../auth/grants.js';
import { AccessEnds } from '../auth/live-access.js';
import { INTERRUPTED_CODE } from '../engine/failure.js';

const id = idParam('task');

/** A report-and-poll request parks when it carries a poll that may wait. */
const pollParks = (req: HttpRequest) => {
  const poll = (req.body as { poll?: { wait_s?: unknown } } | undefined)?.poll;
  return typeof poll === 'object' && poll !== null && poll.wait_s !== 0;
};

/** What workers call: poll for tasks, heartbeat a lease, report success or failure. */
@ApiTags('worker protocol')
@Controller('v1/tasks')
export class WorkerProtocolController {
  constructor(
    private readonly leases: LeaseService,
    private readonly polls: PollService,
    private readonly workers: WorkersService,
  ) {}

  /**
   * Long-poll for READY tasks whose every tag is among the poll's tags (capabilities;
   * untagged tasks fit any poll, `*` every task); each comes with a lease.
   * An empty list when the wait ends first.
   */
  @Post('poll')
  @HttpCode(200)
  @Allow(WORKERS)
  @LongWait(unlessNoWait, { overLimit: 'refuse' })
  async poll(
    @Body() dto: PollDto,
    @CallerOf() caller: Caller,
    @Res({ passthrough: true }) reply: HttpReply,
    @AccessEnds() ends: AbortSignal,
    @WaitPermitOf() mayPark: WaitPermit | undefined,
  ) {
    checkPollGrants(caller, dto.tags);
    return { tasks: await this.take(dto, caller, { gone: goneSignal(reply), ends, mayPark }) };
  }

  /**
   * Several reports of finished tasks and, optionally, the next poll, in one request. Each
   * report is judged alone and answered in `results`, in order: 200, or the status the
   * single route would give (404, 409; 422 for an output over the limit). The poll is
   * answered once the reports are applied. A part the request needs being away (503)
   * refuses the whole request: sending it again is safe, as a report already applied is
   * answered the same way again.
   */
  @Post('report')
  @HttpCode(200)
  @Allow(WORKERS)
  @LongWait(pollParks, { overLimit: 'answer' }) // over LONG_WAITS_PER_CREDENTIAL its reports still count
  async report(
    @Body() dto: ReportAndPollDto,
    @CallerOf() caller: Caller,
    @Res({ passthrough: true }) reply: HttpReply,
    @AccessEnds() ends: AbortSignal,
    @WaitPermitOf() mayPark: WaitPermit | undefined,
  ) {
    if (dto.poll) checkPollGrants(caller, dto.poll.tags); // refused before any report is applied
    const ids = dto.reports.map((r) => r.task_id);
    if (new Set(ids).size !== ids.length)
      throw badRequest('a task may appear once in reports', [
        { field: 'reports', errors: ['a task_id appears twice'] },
      ]);
    const namespace = namespaceOf(caller);
    const results: { task_id: string; status: number; message?: string }[] = [];
    const applyReports = async () => {
      // Completions go together (written in one transaction); failures one after another (each
      // its own transaction, so a batch does not take a connection per report).
      const completing = Promise.allSettled(
        dto.reports.map(async (r, i) => {
          if (r.status === 'complete') results[i] = await this.apply(r, namespace);
        }),
      );
      let refused: unknown;
      for (const [i, r] of dto.reports.entries()) {
        if (r.status !== 'fail') continue;
        try {
          results[i] = await this.apply(r, namespace);
        } catch (e) {
          refused = e;
          break;
        }
      }
      const failed = (await completing).find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (refused ?? failed) throw refused ?? failed!.reason;
    };
    if (!dto.poll) {
      await applyReports();
      return { results, tasks: [] };
    }
    // The poll may be open to a task these reports release while they are applied (take), but not
    // when one hands a task back as its worker stops: that task would come straight back.
    const reports = {
      apply: applyReports,
      mayRelease: !dto.reports.some((r) => r.status === 'fail' && r.error?.code === INTERRUPTED_CODE),
    };
    return { results, tasks: await this.take(dto.poll, caller, { gone: goneSignal(reply), ends, mayPark }, reports) };
  }

  private async apply(
    r: BatchReportDto,
    namespace: string,
  ): Promise<{ task_id: string; status: number; code?: string; message?: string }> {
    try {
      if (r.status === 'complete') {
        await this.leases.complete(r.task_id, r, namespace);
      } else {
        const { stoppingWorker } = await this.leases.fail(r.task_id, r as FailDto, namespace);
        if (stoppingWorker) this.workers.stopping(stoppingWorker, namespace);
      }
      return { task_id: r.task_id, status: 200 };
    } catch (e) {
      const { status, code, message } = itemRefusal(e);
      return { task_id: r.task_id, status: status === 413 ? 422 : status, code, message };
    }
  }

  /**
   * The poll. It stops waiting when the client goes or the key's access ends (revoked,
   * expired: see LiveAccess); leases taken as access ended are given back, never handed out.
   * `reports`, of the same request, are applied first; a task they release may go to this poll
   * (PollService.poll) when `mayRelease` and the worker was seen polling here lately (an unknown
   * or stopping one is refused after its reports, and what it was handed would go back).
   */
  private async take(
    dto: PollDto,
    caller: Caller,
    { gone, ends, mayPark }: { gone: AbortSignal; ends: AbortSignal; mayPark?: WaitPermit },
    reports?: { apply: () => Promise<void>; mayRelease: boolean },
  ) {
    const namespace = namespaceOf(caller);
    const workerId = dto.worker_id ?? null;
    const keyId = caller.kind === 'key' ? caller.keyId : null;
    // After the reports: one of them may be the worker's hand-back as it stops (409 then).
    const first = async () => {
      await reports?.apply();
      if (workerId) await this.workers.touch(workerId, namespace, keyId);
    };
    const early = !!reports?.mayRelease && (!workerId || this.workers.recentlySeen(workerId, namespace, keyId));
    if (!early) await first();
    const taken = await this.polls.poll(
      {
        namespace,
        tags: dto.tags,
        workerId,
        waitMs: (dto.wait_s ?? LIMITS.pollWaitDefaultSeconds) * 1000,
        maxTasks: dto.max_tasks ?? 1,
        grants: caller.kind === 'key' && caller.role !== 'admin' ? caller.grants : undefined,
        gone: AbortSignal.any([gone, ends]),
        mayPark,
      },
      early ? first : undefined,
    );
    if (ends.aborted) {
      await this.leases.handBack(
        taken.map((t) => t.task),
        'the key of the poll was revoked or expired',
      );
      return [];
    }
    return taken.map(({ task, lease }) => ({
      ...toTaskResponse(task),
      lease: { token: lease.token, expires_at: new Date(lease.expires_at).toISOString() },
    }));
  }

  /** Extends the lease; answers whether a cancel was requested. */
  @Post(':id/heartbeat')
  @HttpCode(200)
  @Allow(WORKERS)
  async heartbeat(@Param('id', id) taskId: string, @Body() dto: HeartbeatDto, @NamespaceOf() ns: string) {
    const r = await this.leases.heartbeat(taskId, dto, ns);
    return { expires_at: new Date(r.expires_at).toISOString(), cancel_requested: r.cancel_requested };
  }

  /**
   * Reports success with the current lease token. A stale token gets 409 and changes
   * nothing; the same report sent twice is answered the same way twice.
   */
  @Post(':id/complete')
  @HttpCode(200)
  @Allow(WORKERS)
  async complete(@Param('id', id) taskId: string, @Body() dto: CompleteDto, @NamespaceOf() ns: string) {
    return toTaskResponse(await this.leases.complete(taskId, dto, ns));
  }

  /** Reports failure with the current lease token; retried by the task's policy, then on_error. */
  @Post(':id/fail')
  @HttpCode(200)
  @Allow(WORKERS)
  async fail(@Param('id', id) taskId: string, @Body() dto: FailDto, @NamespaceOf() ns: string) {
    const { task, stoppingWorker } = await this.leases.fail(taskId, dto, ns);
    if (stoppingWorker) this.workers.stopping(stoppingWorker, ns);
    return toTaskResponse(task);
  }
}

/** Aborts when the client closed the connection before its answer was written (a worker that stopped). */
function goneSignal(reply: HttpReply): AbortSignal {
  const gone = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) gone.abort();
  });
  return gone.signal;
}
