import { useMemo, useState } from 'react';
import type { TagflowClient } from '@tagflow/client';
import { isTerminalWorkflow } from '@tagflow/domain/states.js';
import { ActionButton, Ago, Counts, ErrorBox, Json, PagePending, StateBadge } from '../components';
import { useWorkflowLive, type LiveWorkflow } from '../live/useWorkflowLive';
import { href } from '../router';
import type { TaskFilter } from './task-filter';
import { WorkflowDataTab } from './WorkflowDataTab';
import { WorkflowEventsTab } from './WorkflowEventsTab';
import { WorkflowGraphTab } from './WorkflowGraphTab';
import { WorkflowTasksTab } from './WorkflowTasksTab';

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
        <WorkflowGraphTab
          live={live}
          onShowTasks={(f) => {
            setTaskFilter(f);
            window.location.hash = href.workflow(id, 'tasks');
          }}
          id={id}
          client={client}
        />
      ) : null}
      {tab === 'tasks' ? <WorkflowTasksTab live={live} filter={taskFilter} setFilter={setTaskFilter} /> : null}
      {tab === 'data' ? <WorkflowDataTab client={client} live={live} id={id} /> : null}
      {tab === 'events' ? <WorkflowEventsTab live={live} /> : null}
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
