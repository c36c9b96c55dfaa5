import { useQuery } from '@tanstack/react-query';
import { allPages, type TagflowClient } from '@tagflow/client';
import { Ago, ErrorBox, Tags } from '../components';
import { href } from '../router';

/** Registered workers: tags, last seen, what they run now; read again every 3 s. */
export function WorkersPage({ client }: { client: TagflowClient }) {
  const workers = useQuery({
    queryKey: ['workers'],
    queryFn: () => allPages((q) => client.listWorkers(q), 5000),
    refetchInterval: 3000,
  });
  return (
    <main className="page">
      <div className="page-head">
        <h1>Workers</h1>
      </div>
      <ErrorBox error={workers.error} />
      <div className="table-wrap">
        <table className="list" data-testid="workers">
          <thead>
            <tr>
              <th>Name</th>
              <th>Host</th>
              <th>Tags</th>
              <th>Last seen</th>
              <th>Running</th>
              <th>Version</th>
            </tr>
          </thead>
          <tbody>
            {workers.data?.map((w) => (
              <tr key={w.id} data-worker={w.name}>
                <td>
                  {w.name}
                  {w.stopping_at ? <span className="muted small"> · stopped</span> : null}
                  <div className="mono small muted">{w.id}</div>
                </td>
                <td>{w.hostname ?? <span className="muted">—</span>}</td>
                <td>
                  <Tags tags={w.tags} />
                </td>
                <td>
                  <Ago at={w.last_seen_at} />
                </td>
                <td>
                  {w.running_task_ids.length === 0 ? (
                    <span className="muted">idle</span>
                  ) : (
                    <ul className="plain">
                      {w.running_task_ids.map((t) => (
                        <li key={t}>
                          <a className="mono small" href={href.task(t)}>
                            {t}
                          </a>
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
                <td className="small">{w.version ?? '—'}</td>
              </tr>
            ))}
            {workers.data && workers.data.length === 0 ? (
              <tr>
                <td colSpan={6} className="muted">
                  No worker has registered in this namespace.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </main>
  );
}
