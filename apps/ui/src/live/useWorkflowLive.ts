import { useEffect, useRef, useState } from 'react';
import type { Task, TagflowClient, Workflow, WorkflowStreamEvent } from '@tagflow/client';
import { isUnauthorized, reportUnauthorized } from '../session';

export type LiveStatus = 'loading' | 'catching-up' | 'live' | 'reconnecting' | 'ended';

export interface LiveWorkflow {
  workflow: Workflow | null;
  /** Every task of the workflow by id (without outputs and logs: the task page reads those). */
  tasks: ReadonlyMap<string, Task>;
  /** Bumped whenever `tasks` changed, so views can memoize on it. */
  version: number;
  loaded: number;
  status: LiveStatus;
  error: unknown;
  /** The latest transitions, newest last (at most EVENTS_KEPT). */
  events: readonly WorkflowStreamEvent[];
  /** Reads the workflow again (after seal, say, which is no transition). */
  refresh: () => void;
}

const PAGE = 500;
const EVENT_PAGE = 1000;
/** Events are applied in batches, at most this often, so a burst repaints once. */
const FLUSH_MS = 150;
/** Up to this many newly seen tasks are read one by one; more, and the list is read again. */
const FETCH_ONE_BY_ONE = 50;
const FETCH_PARALLEL = 8;
const EVENTS_KEPT = 1000;
/** How often the workflow (its counts) is read to notice tasks that left (deleted ones have no events). */
const RECOUNT_MS = 5000;

/** What the graph and lists need; a task's output can be 256 KiB, times 10,000 tasks. */
function slim(t: Task): Task {
  return { ...t, output: null, stdout: null, stderr: null, resolved_input: null, progress: null };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/**
 * A workflow kept current. Its tasks are read (pages of 500), then its history of
 * transitions (pages of 1,000) is applied in order: a task's state is the `to` of its
 * latest transition, whatever the task list saw, so nothing that changed between reading
 * and following is missed. Then the event stream is followed from there: a task seen for
 * the first time (it arrives with a `none -> WAITING` transition) is read and drawn.
 */
export function useWorkflowLive(client: TagflowClient, id: string): LiveWorkflow {
  const refreshRef = useRef<() => void>(() => undefined);
  const [state, setState] = useState<LiveWorkflow>(() => ({
    workflow: null,
    tasks: new Map(),
    version: 0,
    loaded: 0,
    status: 'loading',
    error: null,
    events: [],
    refresh: () => refreshRef.current(),
  }));

  useEffect(() => {
    const abort = new AbortController();
    const { signal } = abort;
    const tasks = new Map<string, Task>();
    /** The latest transition seen of each task: it wins over any task read before it. */
    const latest = new Map<string, { to: Task['state']; attempt?: number }>();
    let events: WorkflowStreamEvent[] = [];
    let workflow: Workflow | null = null;
    let workflowRead = 0;
    let version = 0;
    let status: LiveStatus = 'loading';
    let error: unknown = null;
    const publish = () => {
      if (signal.aborted) return;
      version++;
      setState((s) => ({ ...s, workflow, tasks, version, loaded: tasks.size, status, error, events }));
    };
    const fail = (e: unknown) => {
      if (signal.aborted) return;
      if (isUnauthorized(e)) reportUnauthorized();
      error = e;
      publish();
    };
    const readWorkflow = () => {
      const asked = ++workflowRead;
      return client.getWorkflow(id).then((w) => {
        // An answer to an older question must not undo a newer one.
        if (asked !== workflowRead) return w;
        workflow = w;
        publish();
        return w;
      });
    };
    refreshRef.current = () => void readWorkflow().catch(fail);

    const keep = (t: Task) => {
      const seen = latest.get(t.id);
      tasks.set(t.id, seen ? { ...slim(t), state: seen.to, attempt: seen.attempt ?? t.attempt } : slim(t));
    };
    const readAllTasks = async () => {
      const present = new Set<string>();
      let cursor: string | undefined;
      do {
        const page = await client.listTasks(id, { limit: PAGE, cursor });
        for (const t of page.items) {
          keep(t);
          present.add(t.id);
        }
        cursor = page.next_cursor ?? undefined;
        publish();
      } while (cursor && !signal.aborted);
      // Deleted tasks leave no transition: the list is the truth for which tasks exist.
      for (const tid of tasks.keys()) if (!present.has(tid)) tasks.delete(tid);
    };

    /** A task seen in an event; null if it is gone again (deleted) or cannot be read now (it is read with the list later). */
    const readOne = async (tid: string): Promise<Task | null> => {
      try {
        return await client.getTask(tid);
      } catch (e) {
        if (isUnauthorized(e)) throw e;
        return null;
      }
    };
    const unknown = new Set<string>();
    let fetching: Promise<void> | null = null;
    const fetchUnknown = () => {
      fetching ??= (async () => {
        try {
          while (unknown.size > 0 && !signal.aborted) {
            if (unknown.size > FETCH_ONE_BY_ONE) {
              unknown.clear();
              await readAllTasks();
              continue;
            }
            const batch = [...unknown].slice(0, FETCH_PARALLEL);
            for (const tid of batch) unknown.delete(tid);
            const got = await Promise.all(batch.map(readOne));
            for (const t of got) if (t) keep(t);
            publish();
          }
        } catch (e) {
          fail(e);
        } finally {
          fetching = null;
        }
      })();
    };

    const apply = (batch: readonly WorkflowStreamEvent[]) => {
      if (batch.length === 0) return false;
      let workflowChanged = false;
      events = [...events, ...batch].slice(-EVENTS_KEPT);
      for (const ev of batch) {
        if (!ev.task_id) {
          workflowChanged = true;
          if (workflow) workflow = { ...workflow, state: ev.to as Workflow['state'] };
          continue;
        }
        const to = ev.to as Task['state'];
        latest.set(ev.task_id, { to, attempt: ev.attempt });
        const t = tasks.get(ev.task_id);
        if (t) tasks.set(t.id, { ...t, state: to, attempt: ev.attempt ?? t.attempt });
        else unknown.add(ev.task_id);
      }
      return workflowChanged;
    };

    const pending: WorkflowStreamEvent[] = [];
    let timer: ReturnType<typeof setTimeout> | null = null;
    const flush = () => {
      timer = null;
      if (signal.aborted) return;
      const workflowChanged = apply(pending.splice(0));
      publish();
      if (workflowChanged) refreshRef.current();
      if (unknown.size > 0) fetchUnknown();
    };

    // Tasks can also leave (deleted while waiting) without a transition, and a task whose read
    // failed is missing: when the counts disagree with what is shown, the list is read again.
    const stopped = () => signal.aborted || status === 'ended';
    const recount = async () => {
      while (!stopped()) {
        await sleep(RECOUNT_MS, signal);
        if (stopped()) return;
        try {
          const w = await readWorkflow();
          const total = Object.values(w.task_counts).reduce((a, b) => a + b, 0);
          if (total !== tasks.size && !fetching && unknown.size === 0) await readAllTasks();
        } catch (e) {
          fail(e);
        }
      }
    };

    const run = async () => {
      try {
        await readWorkflow();
        await readAllTasks();
        // The history so far, in pages: once the last page is in, the view is current.
        status = 'catching-up';
        let after: string | undefined;
        for (;;) {
          const page = await client.workflowEvents(id, { after, limit: EVENT_PAGE });
          apply(page.items);
          if (page.items.length > 0) after = page.items[page.items.length - 1].id;
          publish();
          if (!page.next || signal.aborted) break;
        }
        if (unknown.size > 0) fetchUnknown();
        status = 'live';
        error = null;
        publish();
        void recount();
        // Then as it happens. The client reconnects a dropped stream by itself; if it gives
        // up (the API gone for a while), wait and follow again from the last event.
        for (let attempt = 0; !signal.aborted; attempt++) {
          try {
            for await (const ev of client.followWorkflowEvents(id, after, signal)) {
              after = ev.id;
              if (status !== 'live' || error) {
                status = 'live';
                error = null;
              }
              pending.push(ev);
              timer ??= setTimeout(flush, FLUSH_MS);
            }
            break; // the workflow finished and everything was sent
          } catch (e) {
            if (signal.aborted) return;
            if (isUnauthorized(e)) throw e;
            status = 'reconnecting';
            fail(e);
            await sleep(Math.min(30_000, 2000 * 2 ** Math.min(attempt, 4)), signal);
          }
        }
        if (signal.aborted) return;
        if (timer) clearTimeout(timer);
        flush();
        await readWorkflow();
        status = 'ended';
        publish();
      } catch (e) {
        fail(e);
      }
    };
    void run();
    return () => {
      abort.abort();
      if (timer) clearTimeout(timer);
      refreshRef.current = () => undefined;
    };
  }, [client, id]);

  return state;
}
