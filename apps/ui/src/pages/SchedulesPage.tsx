import { useQuery, useQueryClient } from '@tanstack/react-query';
import { allPages, type TagflowClient } from '@tagflow/client';
import { ActionButton, ErrorBox } from '../components';
import { href } from '../router';

/** A time as the browser's local time, with the exact one on hover. */
function At({ at }: { at: string | null }) {
  if (!at) return <span className="muted">—</span>;
  return (
    <time dateTime={at} title={at}>
      {new Date(at).toLocaleString()}
    </time>
  );
}

/** Schedules (pause, resume, run now) and the namespace's concurrency limits; read again every 3 s. */
export function SchedulesPage({ client }: { client: TagflowClient }) {
  const queries = useQueryClient();
  const schedules = useQuery({
    queryKey: ['schedules'],
    queryFn: () => allPages((q) => client.listSchedules(q), 5000),
    refetchInterval: 3000,
  });
  const limits = useQuery({ queryKey: ['limits'], queryFn: () => client.listLimits(), refetchInterval: 3000 });
  const after = () => queries.invalidateQueries({ queryKey: ['schedules'] });
  return (
    <main className="page">
      <div className="page-head">
        <h1>Schedules</h1>
      </div>
      <ErrorBox error={schedules.error} />
      <div className="table-wrap">
        <table className="list" data-testid="schedules">
          <thead>
            <tr>
              <th>Name</th>
              <th>Cron</th>
              <th>Next run</th>
              <th>Last run</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {schedules.data?.map((s) => (
              <tr key={s.id} data-schedule={s.name}>
                <td>
                  {s.name}
                  {s.paused ? <span className="muted small"> · paused</span> : null}
                  <div className="mono small muted">{s.id}</div>
                  {s.paused_reason ? (
                    <div className="small warn" data-paused-reason>
                      {s.paused_reason}
                    </div>
                  ) : null}
                </td>
                <td>
                  <span className="mono">{s.cron}</span>{' '}
                  <span className="muted small">
                    {s.timezone} · overlap {s.overlap}
                  </span>
                </td>
                <td>
                  <At at={s.next_run_at} />
                </td>
                <td>
                  <At at={s.last_run_at} />
                  {s.last_workflow_id ? (
                    <div>
                      <a className="mono small" href={href.workflow(s.last_workflow_id)}>
                        {s.last_workflow_id}
                      </a>
                    </div>
                  ) : null}
                </td>
                <td className="actions">
                  {s.paused ? (
                    <ActionButton label="Resume" run={() => client.resumeSchedule(s.id).then(after)} />
                  ) : (
                    <ActionButton label="Pause" run={() => client.pauseSchedule(s.id).then(after)} />
                  )}
                  <ActionButton label="Run now" run={() => client.triggerSchedule(s.id).then(after)} />
                </td>
              </tr>
            ))}
            {schedules.data && schedules.data.length === 0 ? (
              <tr>
                <td colSpan={5} className="muted">
                  No schedule in this namespace.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <div className="page-head">
        <h2>Concurrency limits</h2>
      </div>
      <ErrorBox error={limits.error} />
      <div className="table-wrap">
        <table className="list" data-testid="limits">
          <thead>
            <tr>
              <th>Tag</th>
              <th>Max running</th>
              <th>Running</th>
              <th>Held</th>
            </tr>
          </thead>
          <tbody>
            {limits.data?.items.map((l) => (
              <tr key={l.tag} data-limit={l.tag}>
                <td className="mono">{l.tag}</td>
                <td>{l.max_running}</td>
                <td>{l.running}</td>
                <td>{l.held}</td>
              </tr>
            ))}
            {limits.data && limits.data.items.length === 0 ? (
              <tr>
                <td colSpan={4} className="muted">
                  No namespace-wide limit.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </main>
  );
}
