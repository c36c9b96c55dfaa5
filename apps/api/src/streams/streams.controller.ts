import { Body, Controller, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiOkResponse, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { HttpReply, HttpRequest } from '../common/http.js';
import { Allow, NamespaceOf, READERS, WORKERS } from '../auth/access.js';
import { AccessEnds } from '../auth/live-access.js';
import { ApiError, badRequest } from '../common/errors.js';
import { idParam } from '../common/params.js';
import { FollowedStream } from '../long-wait/wait-limit.interceptor.js';
import { EventStream, resumeFrom } from './event-stream.js';
import { AppendLogDto, LogQuery, WorkflowEventsQuery } from './logs.dto.js';
import { LogsService } from './logs.service.js';
import { WorkflowEventsService } from './workflow-events.service.js';

/** A stream request parks for as long as it follows. */
const follows = (req: HttpRequest) => {
  const { follow } = req.query as { follow?: unknown };
  return follow === '1' || follow === 'true';
};

/**
 * Watching work as it happens: a running attempt's output (workers append it; readers
 * read or follow it) and a workflow's transitions. Followed streams are server-sent
 * events; each counts as a long wait of its credential.
 */
@ApiTags('live output')
@Controller('v1')
export class StreamsController {
  constructor(
    private readonly logs: LogsService,
    private readonly events: WorkflowEventsService,
  ) {}

  /** Appends output of the running attempt (current lease only: a stale one gets 409). */
  @Post('tasks/:id/logs')
  @HttpCode(200)
  @Allow(WORKERS)
  append(@Param('id', idParam('task')) taskId: string, @Body() dto: AppendLogDto, @NamespaceOf() ns: string) {
    return this.logs.append(taskId, dto.lease_token, dto.stream, dto.data, ns);
  }

  /**
   * An attempt's output (default the current attempt; the last 1 MiB per stream), as
   * text; with `follow=1`, server-sent events `stdout` / `stderr` (data: the text as a
   * JSON string; id: its seq) as it is written, then `end` with the task's state.
   */
  @Get('tasks/:id/logs')
  @Allow(READERS)
  @FollowedStream(follows)
  @ApiProduces('text/plain', 'text/event-stream')
  @ApiOkResponse({
    description: 'The output as text, or with `follow=1` server-sent events.',
    content: { 'text/plain': { schema: { type: 'string' } }, 'text/event-stream': { schema: { type: 'string' } } },
  })
  async logsOf(
    @Param('id', idParam('task')) taskId: string,
    @Query() q: LogQuery,
    @NamespaceOf() ns: string,
    @Req() req: HttpRequest,
    @Res() res: HttpReply,
    @AccessEnds() ends: AbortSignal,
  ): Promise<void> {
    const query = { attempt: q.attempt, stream: q.stream };
    if (!follows(req)) {
      const kept = await this.logs.read(taskId, query, ns);
      await res
        .header('tagflow-attempt', String(kept.attempt))
        .header('tagflow-log-truncated', String(kept.truncated))
        .type('text/plain; charset=utf-8')
        .send(kept.text);
      return;
    }
    const resume = resumeFrom(req, q.after === undefined ? undefined : String(q.after));
    if (resume !== undefined && !/^\d{1,15}$/.test(resume))
      throw badRequest('Last-Event-ID (or after) must be a seq from this stream (a number)', [
        { field: 'after', errors: ['not a seq'] },
      ]);
    await this.logs.attemptOf(taskId, query.attempt, ns); // 404 before the stream starts
    const out = new EventStream(res, ends);
    await this.logs.follow(taskId, query, Number(resume ?? 0), out, ns).then(
      () => out.end(),
      (e: unknown) => out.end(streamError(e)),
    );
  }

  /**
   * A workflow's transitions and its tasks', oldest first: `{items, next}` pages; with
   * `follow=1`, server-sent `transition` events from the start (or after `Last-Event-ID`)
   * as they happen, then `end` once the workflow is finished and all of it was sent.
   */
  @Get('workflows/:id/events')
  @Allow(READERS)
  @FollowedStream(follows)
  @ApiProduces('application/json', 'text/event-stream')
  async eventsOf(
    @Param('id', idParam('workflow')) workflowId: string,
    @Query() q: WorkflowEventsQuery,
    @NamespaceOf() ns: string,
    @Req() req: HttpRequest,
    @Res() res: HttpReply,
    @AccessEnds() ends: AbortSignal,
  ): Promise<void> {
    if (!follows(req)) {
      await res.send(await this.events.page(workflowId, q.after, q.limit ?? 1000, ns));
      return;
    }
    const after = resumeFrom(req, q.after);
    await this.events.page(workflowId, after, 1, ns); // 404 or 400 before the stream starts
    const out = new EventStream(res, ends);
    await this.events.follow(workflowId, after, out, ns).then(
      () => out.end(),
      (e: unknown) => out.end(streamError(e)),
    );
  }
}

function streamError(e: unknown): { status: number; code: string; message: string } {
  if (e instanceof ApiError) {
    const body = e.getResponse() as { code?: string };
    return { status: e.getStatus(), code: body.code ?? 'INTERNAL', message: e.message };
  }
  return { status: 503, code: 'UNAVAILABLE', message: 'the stream stopped; connect again to resume' };
}
