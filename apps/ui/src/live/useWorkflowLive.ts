import { useEffect, useRef, useState } from 'react';
import type { Task, TagflowClient, Workflow, WorkflowStreamEvent } from '@tagflow/client';

export interface LiveWorkflow {
  workflow: Workflow | null;
  /** Every task of the workflow by id, as of the last event applied. */
  tasks: ReadonlyMap<string, Task>;
  /** Bumped whenever `tasks` changed, so views can memoize on it. */
  version: number;
  loaded: number;
  /** The snapshot has been read and the event stream is open. */
  ready: boolean;
  /** The stream ended: the workflow is finished and everything was sent. */
  ended: boolean;
  error: unknown;
  /** The latest transitions, newest last (at most EVENTS_KEPT). */
  events: readonly WorkflowStreamEvent[];
  /** Reads the workflow again (after seal, say, which is no transition). */
  refresh: () => void;
}

const PAGE = 500;
/** Events are applied in batches, at most this often, so a burst repaints once. */
const FLUSH_MS = 150;
/** Tasks added while watching are read in batches of at most this many at a time. */
const FETCH_PARALLEL = 8;
const EVENTS_KEPT = 1000;

/**
 * A workflow kept current: its tasks are read once (pages of 500), then its event
 * stream is followed from the start. Replaying every transition in order ends at each
 * task's current state whatever the snapshot saw, so no change between reading and
 * following is missed; a transition of a task not yet known (added while watching) reads
 * that task.
 */
export function useWorkflowLive(client: TagflowClient, id: string): LiveWorkflow {
  const refreshRef = useRef<() => void>(() => undefined);
  const [state, setState] = useState<LiveWorkflow>(() => ({ workflow: null, tasks: new Map(), version: 0, loaded: 0, ready: false, ended: false, error: null, events: [], refresh: () => refreshRef.current() }));

  useEffect(() => {
    const abort = new AbortController();
    const tasks = new Map<string, Task>();
    let events: WorkflowStreamEvent[] = [];
    let workflow: Workflow | null = null;
    let version = 0;
    const publish = (patch: Partial<LiveWorkflow> = {}) => {
      if (abort.signal.aborted) return;
      version++;
      setState((s) => ({ ...s, workflow, tasks, version, loaded: tasks.size, events, ...patch }));
    };
    const refresh = () => void client.getWorkflow(id).then((w) => { workflow = w; publish(); }, (e: unknown) => publish({ error: e }));
    refreshRef.current = refresh;

    const pending: WorkflowStreamEvent[] = [];
    let timer: ReturnType<typeof setTimeout> | null = null;
    const unknown = new Set<string>();
    let fetching = false;

    const fetchUnknown = async () => {
      if (fetching) return;
      fetching = true;
      try {
        while (unknown.size > 0 && !abort.signal.aborted) {
          const batch = [...unknown].slice(0, FETCH_PARALLEL);
          const got = await Promise.all(batch.map((tid) => client.getTask(tid).catch(() => null)));
          for (const [i, t] of got.entries()) {
            unknown.delete(batch[i]);
            if (t) tasks.set(t.id, t);
          }
          publish();
        }
      } finally {
        fetching = false;
      }
    };

    const flush = () => {
      timer = null;
      let workflowChanged = false;
      const batch = pending.splice(0);
      events = [...events, ...batch].slice(-EVENTS_KEPT);
      for (const ev of batch) {
        if (!ev.task_id) {
          workflowChanged = true;
          if (workflow) workflow = { ...workflow, state: ev.to as Workflow['state'] };
          continue;
        }
        const t = tasks.get(ev.task_id);
        if (t) tasks.set(t.id, { ...t, state: ev.to as Task['state'], attempt: ev.attempt ?? t.attempt });
        else unknown.add(ev.task_id);
      }
      publish();
      if (workflowChanged) refresh();
      if (unknown.size > 0) void fetchUnknown();
    };

    const run = async () => {
      try {
        workflow = await client.getWorkflow(id);
        publish();
        let cursor: string | undefined;
        do {
          const page = await client.listTasks(id, { limit: PAGE, cursor });
          for (const t of page.items) tasks.set(t.id, t);
          cursor = page.next_cursor ?? undefined;
          publish();
        } while (cursor && !abort.signal.aborted);
        publish({ ready: true });
        for await (const ev of client.followWorkflowEvents(id, undefined, abort.signal)) {
          pending.push(ev);
          timer ??= setTimeout(flush, FLUSH_MS);
        }
        if (timer) clearTimeout(timer);
        flush();
        workflow = await client.getWorkflow(id);
        publish({ ended: true });
      } catch (e) {
        if (!abort.signal.aborted) publish({ error: e });
      }
    };
    void run();
    return () => {
      abort.abort();
      refreshRef.current = () => undefined;
      if (timer) clearTimeout(timer);
    };
  }, [client, id]);

  return state;
}
