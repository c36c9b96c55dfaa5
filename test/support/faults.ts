import Database from 'better-sqlite3';
import pg from 'pg';
import type { Api, LeasedTask } from './harness.js';

/** Row counts of every table and the latest change, straight from the database. */
export async function dbSnapshot(databaseUrl: string): Promise<Record<string, number | string>> {
  const tables = [
    'workflow',
    'workflow_tag',
    'task',
    'task_tag',
    'task_dep',
    'reserved_name',
    'task_event',
    'worker',
    'data_entry',
  ];
  const queries = [
    ...tables.map((t) => [t, `SELECT COUNT(*) AS n FROM ${t}`] as const),
    ['task.updated', 'SELECT COALESCE(MAX(updated_at), 0) AS n FROM task'] as const,
    ['workflow.updated', 'SELECT COALESCE(MAX(updated_at), 0) AS n FROM workflow'] as const,
  ];
  const out: Record<string, number | string> = {};
  if (databaseUrl.startsWith('sqlite:')) {
    const db = new Database(databaseUrl.slice('sqlite:'.length), { readonly: true });
    try {
      for (const [k, q] of queries) out[k] = Number((db.prepare(q).get() as { n: number }).n);
    } finally {
      db.close();
    }
    return out;
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (const [k, q] of queries) out[k] = Number((await client.query<{ n: string }>(q)).rows[0].n);
  } finally {
    await client.end();
  }
  return out;
}

/** How many times each task reached each state, from the recorded transitions. */
export async function transitionCounts(
  databaseUrl: string,
  workflowIds: string[],
): Promise<Map<string, Map<string, number>>> {
  const rows: { task_id: string; to_state: string; n: number }[] = [];
  const sql = (ph: string) =>
    `SELECT task_id, to_state, COUNT(*) AS n FROM task_event WHERE workflow_id IN (${ph}) GROUP BY task_id, to_state`;
  if (databaseUrl.startsWith('sqlite:')) {
    const db = new Database(databaseUrl.slice('sqlite:'.length), { readonly: true });
    try {
      rows.push(...(db.prepare(sql(workflowIds.map(() => '?').join(','))).all(...workflowIds) as typeof rows));
    } finally {
      db.close();
    }
  } else {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      rows.push(...(await client.query(sql(workflowIds.map((_, i) => `$${i + 1}`).join(',')), workflowIds)).rows);
    } finally {
      await client.end();
    }
  }
  const map = new Map<string, Map<string, number>>();
  for (const r of rows)
    (map.get(r.task_id) ?? map.set(r.task_id, new Map()).get(r.task_id)!).set(r.to_state, Number(r.n));
  return map;
}

/**
 * A worker made of HTTP calls that survives the API going away: polls, and completes
 * each task with `output(task)`, retrying a report until it gets an answer.
 * Returns what it leased (task id and attempt) so tests can count.
 */
export function httpWorker(api: () => Api, tags: string[], output: (t: LeasedTask) => object, stop: () => boolean) {
  const leased: { id: string; attempt: number }[] = [];
  const refused: string[] = [];
  const run = async () => {
    while (!stop()) {
      let got: LeasedTask[] = [];
      try {
        got = await api().poll(tags, { max_tasks: 10, wait_s: 1 });
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // API down: back off, then poll again
        continue;
      }
      for (const t of got) {
        leased.push({ id: t.id, attempt: t.attempt });
        for (;;) {
          try {
            const r = await api().complete(t, output(t));
            if (r.status === 409) refused.push(t.id);
            else if (r.status !== 200) throw new Error(`complete ${t.id}: ${r.status}`);
            break;
          } catch (e) {
            if (e instanceof Error && e.message.startsWith('complete')) throw e;
            await new Promise((r) => setTimeout(r, 100)); // API down: retry the report
          }
        }
      }
    }
  };
  return { leased, refused, run };
}
