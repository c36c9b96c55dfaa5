import { useMemo, useState } from 'react';
import type { TaskState } from '@tagflow/client';
import { TASK_STATES } from '@tagflow/domain/states.js';
import { StateBadge, Tags } from '../components';
import { readsOf } from '../graph/model';
import type { LiveWorkflow } from '../live/useWorkflowLive';
import { href } from '../router';
import { matcher, type TaskFilter } from './task-filter';

const ROWS = 100;

/** Every task, filtered and paged in the browser: usable with 10,000 of them. */
export function WorkflowTasksTab({
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
