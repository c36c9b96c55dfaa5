import { useMemo, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { TagflowClient } from '@tagflow/client';
import { buildGraph, type Grouping } from '../graph/model';
import { WorkflowGraph } from '../graph/WorkflowGraph';
import type { LiveWorkflow } from '../live/useWorkflowLive';
import { href } from '../router';
import { filterForGroup, type TaskFilter } from './task-filter';

/** Above this many tasks the graph draws groups; a group this large is listed, not drawn. */
const MAX_NODES = 300;

/**
 * The graph as it grows. Over MAX_NODES tasks it is drawn as groups, opened on a click; a
 * group too large to draw is handed to the Tasks tab as a filter.
 */
export function WorkflowGraphTab({
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
