import { StateBadge } from '../components';
import type { LiveWorkflow } from '../live/useWorkflowLive';
import { href } from '../router';

/** The workflow's transitions and its tasks', newest first (the last 300). */
export function WorkflowEventsTab({ live }: { live: LiveWorkflow }) {
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
