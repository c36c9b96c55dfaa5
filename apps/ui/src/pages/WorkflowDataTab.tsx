import { useMemo, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { Task, TagflowClient } from '@tagflow/client';
import { Ago, ErrorBox, Json } from '../components';
import { readsOf } from '../graph/model';
import type { LiveWorkflow } from '../live/useWorkflowLive';
import { href } from '../router';

/** The data space: each key, its value, who wrote it, who declares it, who waits for it. */
export function WorkflowDataTab({ client, live, id }: { client: TagflowClient; live: LiveWorkflow; id: string }) {
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
