import { Injectable } from '@nestjs/common';
import { Database } from '@tagflow/persistence';
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

/** A place in a workflow's history: the last task event and workflow event seen, `"T.W"`. */
interface Cursor {
  task: number;
  workflow: number;
}

/**
 * A workflow's history as one stream: its own transitions and every task's, in the order
 * they happened, from the start or from a cursor; followed, it goes on as they happen.
 */
@Injectable()
export class WorkflowEventsService {
  constructor(private readonly db: Database, private readonly waits: LongWaits) {}

  async page(workflowId: string, after: string | undefined, limit: number, namespace: string): Promise<{ items: StreamEvent[]; next: string | null }> {
    await this.workflow(workflowId, namespace);
    const { items, cursor } = await this.read(workflowId, parseCursor(after), limit);
    return { items, next: items.length === limit ? format(cursor) : null };
  }

  /** Sends every transition after `after` as a `transition` event, then each new one, until the client goes away. */
  async follow(workflowId: string, after: string | undefined, out: EventStream, namespace: string): Promise<void> {
    await this.workflow(workflowId, namespace);
    let cursor = parseCursor(after);
    while (!out.closed && !this.waits.isClosing) {
      const { items, cursor: next } = await this.read(workflowId, cursor, PAGE_MAX);
      for (const e of items) out.send('transition', e, e.id);
      cursor = next;
      if (items.length === PAGE_MAX) continue;
      out.keepAlive();
      await this.waits.nap(LongWaits.workflow(workflowId), FOLLOW_EVERY_MS);
    }
  }

  private async read(workflowId: string, from: Cursor, limit: number): Promise<{ items: StreamEvent[]; cursor: Cursor }> {
    const { tasks, workflow } = await this.db.read().events.streamOf(workflowId, from.task, from.workflow, limit);
    // Each table in id order (a cursor is the last id seen in each), merged by time; at the
    // same millisecond the task's event first (the workflow's follows its tasks' changes).
    // Past the end of a full page the other table may hold earlier events: stop there.
    const cursor = { ...from };
    const items: StreamEvent[] = [];
    let i = 0;
    let j = 0;
    while (items.length < limit) {
      const t = tasks[i];
      const w = workflow[j];
      if ((!t && tasks.length === limit) || (!w && workflow.length === limit) || (!t && !w)) break;
      if (t && (!w || t.at <= w.at)) {
        cursor.task = t.id;
        items.push({ id: format(cursor), at: iso(t.at), task_id: t.task_id, name: t.name, from: t.from_state, to: t.to_state, attempt: t.attempt, reason: t.reason });
        i++;
      } else {
        cursor.workflow = w.id;
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
  if (s === undefined || s === '') return { task: 0, workflow: 0 };
  const m = /^(\d{1,15})\.(\d{1,15})$/.exec(s);
  if (!m) throw badRequest('after (or Last-Event-ID) must be an event id from this stream, like "120.3"', [{ field: 'after', errors: ['not an event id'] }]);
  return { task: Number(m[1]), workflow: Number(m[2]) };
}

function format(c: Cursor): string {
  return `${c.task}.${c.workflow}`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
