import { Controller, Get, Param } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { isoOrNull } from '@tagflow/domain';
import { Database } from '@tagflow/persistence';
import { Allow, NamespaceOf, READERS } from '../auth/access.js';
import { notFound } from '../common/errors.js';
import { idParam } from '../common/params.js';

/** Deliveries shown per workflow at most (oldest first). */
const SHOWN = 1000;

@ApiTags('flow control')
@Controller('v1/workflows')
export class CallbacksController {
  constructor(private readonly db: Database) {}

  /**
   * The callbacks of a workflow and its tasks: each delivery with its state (pending,
   * delivered, failed), its tries (time, status, error, duration) and when it is tried next.
   */
  @Get(':id/callbacks')
  @Allow(READERS)
  async list(@Param('id', idParam('workflow')) workflowId: string, @NamespaceOf() ns: string) {
    const repos = this.db.read();
    if (!(await repos.workflows.get(workflowId, ns))) throw notFound('workflow', workflowId);
    const rows = await repos.callbacks.ofWorkflow(workflowId, SHOWN);
    return {
      items: rows.map((d) => ({
        id: d.id,
        event: d.event,
        task_id: d.task_id,
        url: d.url,
        signed: d.secret !== null,
        state: d.state,
        attempts: d.attempts,
        next_attempt_at: d.state === 'pending' ? isoOrNull(d.next_attempt_at) : null,
        last_status: d.last_status,
        last_error: d.last_error,
        created_at: isoOrNull(d.created_at),
        delivered_at: isoOrNull(d.delivered_at),
        history: d.history.map((a) => ({ at: isoOrNull(a.at), status: a.status, error: a.error, ms: a.ms })),
      })),
    };
  }
}
