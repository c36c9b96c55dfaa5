import { useState } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import type { TagflowClient, WorkflowState } from '@tagflow/client';
import { WORKFLOW_STATES } from '@tagflow/domain/states.js';
import { Ago, Counts, ErrorBox, StateBadge, Tags } from '../components';
import { href } from '../router';

const PAGE = 50;

/** Workflows, newest first, filtered by state, name and tag; read again every 2 s. */
export function WorkflowsPage({ client }: { client: TagflowClient }) {
  const [state, setState] = useState<WorkflowState | ''>('');
  const [name, setName] = useState('');
  const [tag, setTag] = useState('');
  // Cursors of the pages before this one, to go back.
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const cursor = cursors[cursors.length - 1];
  const filters = { state: state || undefined, name: name.trim() || undefined, tag: tag.trim() || undefined };
  const list = useQuery({
    queryKey: ['workflows', filters, cursor],
    queryFn: () => client.listWorkflows({ ...filters, limit: PAGE, cursor }),
    refetchInterval: 2000,
    placeholderData: keepPreviousData,
  });
  const resetPaging = () => setCursors([undefined]);

  return (
    <main className="page">
      <div className="page-head">
        <h1>Workflows</h1>
        <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="filters">
          <label>
            State
            <select
              value={state}
              onChange={(e) => {
                setState(e.target.value as WorkflowState | '');
                resetPaging();
              }}
            >
              <option value="">any</option>
              {WORKFLOW_STATES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          <label>
            Name
            <input
              value={name}
              placeholder="exact name"
              onChange={(e) => {
                setName(e.target.value);
                resetPaging();
              }}
            />
          </label>
          <label>
            Tag
            <input
              value={tag}
              placeholder="tag"
              onChange={(e) => {
                setTag(e.target.value);
                resetPaging();
              }}
            />
          </label>
        </form>
      </div>
      <ErrorBox error={list.error} />
      <div className="table-wrap">
        <table className="list" data-testid="workflows">
          <thead>
            <tr>
              <th>Name</th>
              <th>State</th>
              <th>Tasks</th>
              <th>Tags</th>
              <th>Created</th>
              <th>ID</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.items.map((w) => (
              <tr key={w.id} data-workflow={w.name}>
                <td>
                  <a href={href.workflow(w.id)}>{w.name}</a>
                  {w.sealed ? null : <span className="muted small"> · open</span>}
                </td>
                <td>
                  <StateBadge state={w.state} />
                </td>
                <td>
                  <Counts counts={w.task_counts} />
                </td>
                <td>
                  <Tags tags={w.tags} />
                </td>
                <td>
                  <Ago at={w.created_at} />
                </td>
                <td className="mono small">{w.id}</td>
              </tr>
            ))}
            {list.data && list.data.items.length === 0 ? (
              <tr>
                <td colSpan={6} className="muted">
                  No workflow matches.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <div className="pager">
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Newer
        </button>
        <button
          type="button"
          disabled={!list.data?.next_cursor}
          onClick={() => setCursors((c) => [...c, list.data?.next_cursor ?? undefined])}
        >
          Older
        </button>
      </div>
    </main>
  );
}
