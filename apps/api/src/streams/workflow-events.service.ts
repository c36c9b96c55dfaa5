import { Injectable } from '@nestjs/common';
import { isTerminalWorkflow } from '@tagflow/domain';
import { Database, type EventPlace } from '@tagflow/persistence';
import { badRequest, notFound } from '../common/errors.js';
import { LongWaits } from '../long-wait/long-waits.js';
import type { EventStream } from './event-stream.js';

/** How often a follower looks for new transitions (the engine does not announce each one). */
const FOLLOW_EVERY_MS = 500;
const PAGE_MAX = 1000;

/** One transition as the stream sends it; `id` is where to resume after it. */
export interface StreamEvent {
  id: string;
  at: string;
  task_id?: string;
  name?: string | null;
  from: string | null;
  to: string;
  attempt?: number;
  reason: string | null;
}

/** A place in a workflow's history: the last task event and workflow event seen, each as (transaction, id): `"tx:id.tx:id"`. */
interface Cursor {
  task: EventPlace;
  workflow: EventPlace;
}

/**
 * A workflow's history as one stream: its own transitions and every task's, in the order
 * they happened, from the start or from a cursor; followed, it goes on as they happen.
 */
@Injectable()
export class WorkflowEventsService {
  constructor(
    private readonly db: Database,
    private readonly waits: LongWaits,
  ) {}

  async page(
    workflowId: string,
    after: string | undefined,
    limit: number,
    namespace: string,
  ): Promise<{ items: StreamEvent[]; next: string | null }> {
    await this.workflow(workflowId, namespace);
    const { items, cursor } = await this.read(workflowId, parseCursor(after), limit);
    return { items, next: items.length === limit ? format(cursor) : null };
  }

  /**
   * Sends every transition after `after` as a `transition` event, then each new one as it
   * happens; once the workflow is finished and everything was sent, an `end` event
   * `{state}` (a rerun reopens it: follow again).
   */
  async follow(workflowId: string, after: string | undefined, out: EventStream, namespace: string): Promise<void> {
    await this.workflow(workflowId, namespace);
    let cursor = parseCursor(after);
    while (!out.closed && !this.waits.isClosing) {
      // Read before the look at its state: a workflow seen finished has had all its events read.
      const wf = await this.db.read().workflows.get(workflowId, namespace);
      const { items, cursor: next } = await this.read(workflowId, cursor, PAGE_MAX);
      for (const e of items) out.send('transition', e, e.id);
      await out.flushed();
      cursor = next;
      if (items.length === PAGE_MAX) continue;
      if (!wf) throw notFound('workflow', workflowId); // deleted meanwhile
      if (isTerminalWorkflow(wf.state)) {
        out.send('end', { state: wf.state });
        return;
      }
      out.keepAlive();
      await this.waits.nap(LongWaits.workflow(workflowId), FOLLOW_EVERY_MS);
    }
  }

  private async read(
    workflowId: string,
    from: Cursor,
    limit: number,
  ): Promise<{ items: StreamEvent[]; cursor: Cursor }> {
    const { tasks, workflow } = await this.db.read().events.streamOf(workflowId, from.task, from.workflow, limit);
    // Each table in (transaction, id) order (a cursor is the last seen in each), merged by time; at the
    // same millisecond the task's event first (the workflow's follows its tasks' changes).
    // Past the end of a full page the other table may hold earlier events: stop there.
    const cursor = { task: { ...from.task }, workflow: { ...from.workflow } };
    const items: StreamEvent[] = [];
    let i = 0;
    let j = 0;
    while (items.length < limit) {
      const t = tasks[i];
      const w = workflow[j];
      if ((!t && tasks.length === limit) || (!w && workflow.length === limit) || (!t && !w)) break;
      if (t && (!w || t.at <= w.at)) {
        cursor.task = { tx: t.tx, id: t.id };
        items.push({
          id: format(cursor),
          at: iso(t.at),
          task_id: t.task_id,
          name: t.name,
          from: t.from_state,
          to: t.to_state,
          attempt: t.attempt,
          reason: t.reason,
        });
        i++;
      } else {
        cursor.workflow = { tx: w.tx, id: w.id };
        items.push({ id: format(cursor), at: iso(w.at), from: w.from_state, to: w.to_state, reason: w.reason });
        j++;
      }
    }
    return { items, cursor };
  }

  private async workflow(id: string, namespace: string): Promise<void> {
    const wf = await this.db.read().workflows.get(id, namespace);
    if (!wf) throw notFound('workflow', id);
  }
}

function parseCursor(s: string | undefined): Cursor {
  if (s === undefined || s === '') return { task: { tx: 0, id: 0 }, workflow: { tx: 0, id: 0 } };
  const m = /^(?:(\d{1,19}):)?(\d{1,15})\.(?:(\d{1,19}):)?(\d{1,15})$/.exec(s);
  if (!m)
    throw badRequest('after (or Last-Event-ID) must be an event id from this stream, like "0:120.0:3"', [
      { field: 'after', errors: ['not an event id'] },
    ]);
  return { task: { tx: Number(m[1] ?? 0), id: Number(m[2]) }, workflow: { tx: Number(m[3] ?? 0), id: Number(m[4]) } };
}

function format(c: Cursor): string {
  return `${c.task.tx}:${c.task.id}.${c.workflow.tx}:${c.workflow.id}`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
