import { useMemo, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { Task, TagflowClient, TaskState } from '@tagflow/client';
import { isTerminalWorkflow, TASK_STATES } from '@tagflow/domain/states.js';
import { ActionButton, Ago, Counts, ErrorBox, Json, PagePending, StateBadge, Tags } from '../components';
import { buildGraph, groupIdOf, namePattern, readsOf, type Grouping } from '../graph/model';
import { WorkflowGraph } from '../graph/WorkflowGraph';
import { useWorkflowLive, type LiveWorkflow } from '../live/useWorkflowLive';
import { href } from '../router';

/** Above this many tasks the graph draws groups; a group this large is listed, not drawn. */
const MAX_NODES = 300;

export function WorkflowPage({
  client,
  id,
  tab,
}: {
  client: TagflowClient;
  id: string;
  tab: 'graph' | 'tasks' | 'data' | 'events';
}) {
  const live = useWorkflowLive(client, id);
  const [taskFilter, setTaskFilter] = useState<TaskFilter>({ name: '', state: '', tag: '' });
  const w = live.workflow;
  const counts = useMemo(() => {
    const c: Record<string, number> = {};
    for (const t of live.tasks.values()) c[t.state] = (c[t.state] ?? 0) + 1;
    return c;
  }, [live.tasks, live.version]);

  if (!w) return <PagePending error={live.error} />;
  const finished = isTerminalWorkflow(w.state);
  const act = (run: () => Promise<unknown>) => async () => {
    await run();
    live.refresh();
  };
  return (
    <main className="page">
      <div className="page-head">
        <div>
          <div className="crumbs">
            <a href={href.workflows()}>Workflows</a> /
          </div>
          <h1>
            {w.name} <StateBadge state={w.state} />{' '}
            {w.sealed ? null : (
              <span className="badge-open" title="tasks may still be added">
                open
              </span>
            )}
          </h1>
          <div className="sub">
            <Counts counts={counts} /> · <span className="mono small">{w.id}</span> · created <Ago at={w.created_at} />
            <LiveBadge live={live} />
          </div>
        </div>
        <div className="buttons">
          {!w.sealed && !finished ? <ActionButton label="Seal" run={act(() => client.sealWorkflow(w.id))} /> : null}
          {w.state === 'RUNNING' ? <ActionButton label="Pause" run={act(() => client.pauseWorkflow(w.id))} /> : null}
          {w.state === 'PAUSED' ? <ActionButton label="Resume" run={act(() => client.resumeWorkflow(w.id))} /> : null}
          {!finished ? (
            <ActionButton
              label="Cancel"
              danger
              confirm={`Cancel workflow ${w.name}? Running tasks are asked to stop.`}
              run={act(() => client.cancelWorkflow(w.id))}
            />
          ) : null}
        </div>
      </div>
      <ErrorBox error={live.error} />
      <nav className="tabs">
        {(['graph', 'tasks', 'data', 'events'] as const).map((t) => (
          <a key={t} href={href.workflow(id, t)} className={t === tab ? 'active' : undefined}>
            {t === 'data' ? 'data space' : t}
          </a>
        ))}
      </nav>
      {tab === 'graph' ? (
        <GraphTab
          live={live}
          onShowTasks={(f) => {
            setTaskFilter(f);
            window.location.hash = href.workflow(id, 'tasks');
          }}
          id={id}
          client={client}
        />
      ) : null}
      {tab === 'tasks' ? <TasksTab live={live} filter={taskFilter} setFilter={setTaskFilter} /> : null}
      {tab === 'data' ? <DataTab client={client} live={live} id={id} /> : null}
      {tab === 'events' ? <EventsTab live={live} /> : null}
      <details className="card">
        <summary>Workflow as JSON</summary>
        <Json value={w} />
      </details>
    </main>
  );
}

function LiveBadge({ live }: { live: LiveWorkflow }) {
  switch (live.status) {
    case 'loading':
      return <span className="muted"> · loading {live.loaded} tasks…</span>;
    case 'catching-up':
      return <span className="muted"> · reading its history…</span>;
    case 'live':
      return (
        <span className="live" title="following the event stream">
          ● live
        </span>
      );
    case 'reconnecting':
      return (
        <span className="warn" title="the event stream dropped; following again">
          ● reconnecting…
        </span>
      );
    case 'ended':
      return null;
  }
}

function GraphTab({
  live,
  onShowTasks,
  id,
  client,
}: {
  live: LiveWorkflow;
  onShowTasks: (f: TaskFilter) => void;
  id: string;
  client: TagflowClient;
}) {
  const [grouping, setGrouping] = useState<Grouping>('auto');
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set());
  const [note, setNote] = useState<string | null>(null);
  const data = useQuery({ queryKey: ['data', id], queryFn: () => client.listData(id), refetchInterval: 3000 });
  const written = useMemo(
    () => new Set((data.data?.items ?? []).filter((d) => d.written_at).map((d) => d.key)),
    [data.data],
  );
  const graph = useMemo(
    () => buildGraph([...live.tasks.values()], { written, maxNodes: MAX_NODES, grouping, expanded }),
    [live.tasks, live.version, written, grouping, expanded],
  );
  const groups = graph.nodes.filter((n) => n.type === 'cluster');
  const expand = (groupId: string) => {
    const g = groups.find((n) => n.id === groupId);
    if (!g || g.type !== 'cluster') return;
    if (g.size > MAX_NODES) {
      setNote(`${g.label} has ${g.size} tasks, too many to draw one by one: they are listed in the Tasks tab.`);
      onShowTasks(filterForGroup(groupId));
      return;
    }
    setExpanded((s) => new Set([...s, groupId]));
  };
  return (
    <section>
      <div className="graph-bar">
        <label>
          Group
          <select
            value={grouping}
            onChange={(e) => {
              setGrouping(e.target.value as Grouping);
              setExpanded(new Set());
            }}
          >
            <option value="auto">when over {MAX_NODES} tasks</option>
            <option value="none">never</option>
            <option value="name">by name pattern</option>
            <option value="tag">by tags</option>
            <option value="state">by state</option>
          </select>
        </label>
        {graph.grouped ? (
          <span className="muted small">
            {live.tasks.size} tasks drawn as {groups.length} groups: click a group to draw its tasks.
          </span>
        ) : null}
        {expanded.size > 0 ? (
          <button type="button" onClick={() => setExpanded(new Set())}>
            Collapse all
          </button>
        ) : null}
        <span className="legend small">
          <span className="edge-key requires">requires</span>
          <span className="edge-key tag">tag selector</span>
          <span className="edge-key data">data key</span>
          <span className="edge-key handler">on_error / revert</span>
        </span>
      </div>
      {note ? <div className="note">{note}</div> : null}
      {grouping === 'none' && live.tasks.size > 2000 ? (
        <div className="note">{live.tasks.size} tasks are too many to draw one by one; choose a grouping.</div>
      ) : live.tasks.size === 0 ? (
        <p className="muted">
          {live.status === 'loading' ? 'Loading…' : 'No tasks yet: they appear here as they are added.'}
        </p>
      ) : (
        <WorkflowGraph
          graph={graph}
          onOpenTask={(taskId) => {
            window.location.hash = href.task(taskId);
          }}
          onExpandGroup={expand}
          onOpenData={() => {
            window.location.hash = href.workflow(id, 'data');
          }}
        />
      )}
    </section>
  );
}

interface TaskFilter {
  /** Part of the name; `#` stands for a number (the graph's name patterns). */
  name: string;
  state: TaskState | '';
  tag: string;
  /** A group of the graph (its id): its tasks only. */
  group?: string;
}

function filterForGroup(groupId: string): TaskFilter {
  return { name: '', state: '', tag: '', group: groupId };
}

function matcher(f: TaskFilter): (t: Task) => boolean {
  const name = f.name.trim();
  const pattern = name.includes('#')
    ? new RegExp(
        `^${name
          .split('#')
          .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
          .join('\\d+')}$`,
      )
    : null;
  return (t) =>
    (!f.group || groupIdOf(t, f.group) === f.group) &&
    (!f.state || t.state === f.state) &&
    (!f.tag || t.tags.includes(f.tag.trim())) &&
    (!name || (pattern ? pattern.test(t.name) || namePattern(t.name) === name : t.name.includes(name)));
}

const ROWS = 100;

/** Every task, filtered and paged in the browser: usable with 10,000 of them. */
function TasksTab({
  live,
  filter,
  setFilter,
}: {
  live: LiveWorkflow;
  filter: TaskFilter;
  setFilter: (f: TaskFilter) => void;
}) {
  const [page, setPage] = useState(0);
  const rows = useMemo(() => [...live.tasks.values()].filter(matcher(filter)), [live.tasks, live.version, filter]);
  const pages = Math.max(1, Math.ceil(rows.length / ROWS));
  const shown = rows.slice(Math.min(page, pages - 1) * ROWS, Math.min(page, pages - 1) * ROWS + ROWS);
  const set = (f: Partial<TaskFilter>) => {
    setFilter({ ...filter, ...f });
    setPage(0);
  };
  const group = filter.group ? filter.group.slice(filter.group.indexOf(':', 'group:'.length) + 1) : null;
  return (
    <section>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="task filters">
        <label>
          Name{' '}
          <input
            value={filter.name}
            placeholder="part of a name, # for a number"
            onChange={(e) => set({ name: e.target.value })}
          />
        </label>
        <label>
          State
          <select value={filter.state} onChange={(e) => set({ state: e.target.value as TaskState | '' })}>
            <option value="">any</option>
            {TASK_STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Tag <input value={filter.tag} onChange={(e) => set({ tag: e.target.value })} />
        </label>
        {group ? (
          <span className="tag">
            group {group}{' '}
            <button
              type="button"
              className="link"
              aria-label="show every group"
              onClick={() => set({ group: undefined })}
            >
              ×
            </button>
          </span>
        ) : null}
        <span className="muted small">
          {rows.length} of {live.tasks.size}
        </span>
      </form>
      <div className="table-wrap">
        <table className="list" data-testid="tasks">
          <thead>
            <tr>
              <th>Name</th>
              <th>State</th>
              <th>Attempt</th>
              <th>Tags</th>
              <th>Depends on</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((t) => (
              <tr key={t.id} data-task={t.name}>
                <td>
                  <a href={href.task(t.id)}>{t.name}</a>
                  {t.kind === 'task' ? null : (
                    <span className="node-mark"> {t.kind === 'handler' ? 'on_error' : 'revert'}</span>
                  )}
                </td>
                <td>
                  <StateBadge state={t.state} />
                </td>
                <td>{t.attempt}</td>
                <td>
                  <Tags tags={t.tags} />
                </td>
                <td className="small">
                  {[
                    ...t.requires,
                    ...t.requires_tags.map((x) => `tag:${x}`),
                    ...readsOf(t).data.map((k) => `data:${k}`),
                  ].join(', ') || '—'}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="pager">
        <button type="button" disabled={page === 0} onClick={() => setPage(page - 1)}>
          Previous
        </button>
        <span className="small">
          page {Math.min(page, pages - 1) + 1} of {pages}
        </span>
        <button type="button" disabled={page >= pages - 1} onClick={() => setPage(page + 1)}>
          Next
        </button>
      </div>
    </section>
  );
}

/** The data space: each key, its value, who wrote it, who declares it, who waits for it. */
function DataTab({ client, live, id }: { client: TagflowClient; live: LiveWorkflow; id: string }) {
  const list = useQuery({ queryKey: ['data', id], queryFn: () => client.listData(id), refetchInterval: 3000 });
  const [open, setOpen] = useState<string | null>(null);
  const value = useQuery({
    queryKey: ['data', id, open],
    queryFn: () => client.getData(id, open!),
    enabled: open !== null,
  });
  const rows = useMemo(() => {
    const keys = new Map<
      string,
      { written_at: string | null; task_id: string | null; producers: Task[]; readers: Task[] }
    >();
    const row = (k: string) =>
      keys.get(k) ?? keys.set(k, { written_at: null, task_id: null, producers: [], readers: [] }).get(k)!;
    for (const d of list.data?.items ?? []) Object.assign(row(d.key), { written_at: d.written_at, task_id: d.task_id });
    for (const t of live.tasks.values()) {
      for (const k of t.produces) row(k).producers.push(t);
      for (const k of readsOf(t).data) row(k).readers.push(t);
    }
    return [...keys.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [list.data, live.tasks, live.version]);
  const name = (taskId: string | null) => (taskId ? (live.tasks.get(taskId)?.name ?? taskId) : null);
  return (
    <section>
      <ErrorBox error={list.error} />
      <div className="table-wrap">
        <table className="list" data-testid="data">
          <thead>
            <tr>
              <th>Key</th>
              <th>Written</th>
              <th>By</th>
              <th>Declared by</th>
              <th>Waiting for it</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map(([k, r]) => (
              <tr key={k} data-key={k}>
                <td className="mono">{k}</td>
                <td>{r.written_at ? <Ago at={r.written_at} /> : <span className="muted">not yet</span>}</td>
                <td>
                  {r.task_id ? (
                    <a href={href.task(r.task_id)}>{name(r.task_id)}</a>
                  ) : r.written_at ? (
                    <span className="muted">a client</span>
                  ) : (
                    '—'
                  )}
                </td>
                <td>
                  {r.producers.map((t) => (
                    <a key={t.id} href={href.task(t.id)}>
                      {t.name}{' '}
                    </a>
                  ))}
                </td>
                <td>
                  {r.readers
                    .filter((t) => t.state === 'WAITING')
                    .map((t) => (
                      <a key={t.id} href={href.task(t.id)}>
                        {t.name}{' '}
                      </a>
                    ))}
                </td>
                <td>
                  {r.written_at ? (
                    <button type="button" onClick={() => setOpen(open === k ? null : k)}>
                      {open === k ? 'Hide' : 'Value'}
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
            {rows.length === 0 ? (
              <tr>
                <td colSpan={6} className="muted">
                  No data key is written, declared or read in this workflow.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      {open ? (
        <div className="card">
          <h2 className="mono">{open}</h2>
          <ErrorBox error={value.error} />
          {value.data ? <Json value={value.data.value} /> : null}
        </div>
      ) : null}
    </section>
  );
}

function EventsTab({ live }: { live: LiveWorkflow }) {
  const shown = [...live.events].reverse().slice(0, 300);
  return (
    <div className="table-wrap">
      <table className="list" data-testid="events">
        <thead>
          <tr>
            <th>At</th>
            <th>Task</th>
            <th>From</th>
            <th>To</th>
            <th>Attempt</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((e) => (
            <tr key={e.id}>
              <td className="small">{new Date(e.at).toLocaleTimeString()}</td>
              <td>
                {e.task_id ? (
                  <a href={href.task(e.task_id)}>{e.name ?? e.task_id}</a>
                ) : (
                  <span className="muted">workflow</span>
                )}
              </td>
              <td>{e.from ? <StateBadge state={e.from} /> : '—'}</td>
              <td>
                <StateBadge state={e.to} />
              </td>
              <td>{e.attempt ?? ''}</td>
              <td className="small">{e.reason ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
