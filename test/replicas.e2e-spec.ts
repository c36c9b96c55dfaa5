import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { resolve } from 'node:path';
import pg from 'pg';
import { Api, DATABASE, task, waitFor, waitForWorkflow, workflow, type LeasedTask } from './support/harness.js';

/**
 * Two API processes on one PostgreSQL and one Redis. (SQLite is for a single API
 * process; scripts/test.sh runs this suite on PostgreSQL only.)
 */
describe('two API replicas on one database and Redis', () => {
  let a: Api;
  let b: Api;
  beforeAll(async () => {
    if (DATABASE !== 'postgres') throw new Error('the replica suite needs TEST_DATABASE=postgres');
    a = await Api.start();
    b = await Api.start({ databaseUrl: a.databaseUrl, prefix: a.prefix });
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('wakes a long-poll parked on one replica when a task becomes ready through the other', async () => {
    const t = `xr-${Date.now()}`;
    const wf = await a.createWorkflow(workflow());
    const parked = a.poll([t], { wait_s: 20 });
    await a.pollsParked();
    const started = Date.now();
    await b.post(`/v1/workflows/${wf.id}/tasks`, task('via-b', { tags: [t] }));
    const [got] = await parked;
    expect(got.name).toBe('via-b');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('wakes a blocking data read on one replica when the key is written through the other', async () => {
    const wf = await a.createWorkflow(workflow());
    const blocked = a.get(`/v1/workflows/${wf.id}/data/cluster.master?wait_s=20`);
    await waitFor('the read to block on replica a', async () => (await a.metric('tagflow_data_reads_waiting')) >= 1);
    const started = Date.now();
    expect(
      (await b.request('PUT', `/v1/workflows/${wf.id}/data/cluster.master`, { value: { host: 'db1' } })).status,
    ).toBe(200);
    const r = await blocked;
    expect(r.body).toMatchObject({ key: 'cluster.master', value: { host: 'db1' } });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('runs 2,000 tasks with tag dependencies: every attempt leased once, every dependency released once, every workflow finished once', async () => {
    // Invariants (violations listed by task id): one lease per task, one WAITING->READY and
    // one SUCCESS per task in the recorded history, and one finish per workflow.
    const groups = 5;
    const perGroup = 100;
    const workflowCount = 4;
    const workflows = [];
    for (let w = 0; w < workflowCount; w++) {
      const tasks = [];
      for (let g = 0; g < groups; g++) {
        for (let i = 0; i < perGroup; i++) {
          tasks.push(
            task(`g${g}-${i}`, { tags: ['rep', `g${g}`], ...(g > 0 ? { requires_tags: [`g${g - 1}`] } : {}) }),
          );
        }
      }
      workflows.push(await (w % 2 ? b : a).createWorkflow(workflow({ sealed: true, tasks })));
    }
    const total = workflowCount * groups * perGroup;
    const capabilities = ['rep', ...Array.from({ length: groups }, (_, g) => `g${g}`)]; // able to run every group
    const leased: LeasedTask[] = [];
    let done = 0;
    // Bounded, so a task never offered fails the test with the count instead of a timeout.
    const deadline = Date.now() + 90_000;
    const worker = async (api: Api) => {
      while (done < total && Date.now() < deadline) {
        const got = await api.poll(capabilities, { max_tasks: 8, wait_s: 1 });
        leased.push(...got);
        for (const t of got) {
          const r = await api.complete(t, { by: api.url });
          if (r.status !== 200) throw new Error(`complete ${t.id}: ${r.status} ${JSON.stringify(r.body)}`);
          done++;
        }
      }
    };
    const started = Date.now();
    await Promise.all([a, b, a, b, a, b, a, b].map((api) => worker(api)));
    console.log(`two replicas ran ${done} of ${total} tasks in ${Date.now() - started} ms`);
    expect(done).toBe(total);

    const perTask = new Map<string, number>();
    for (const t of leased) perTask.set(t.id, (perTask.get(t.id) ?? 0) + 1);
    const doubled = [...perTask].filter(([, n]) => n > 1).map(([id]) => id);
    expect(doubled).toEqual([]);
    expect(perTask.size).toBe(total);

    for (const wf of workflows) expect((await waitForWorkflow(a, wf.id, ['SUCCESS', 'ERROR'])).state).toBe('SUCCESS');

    // The recorded history agrees: one release, one lease, one finish per task.
    const db = new pg.Client({ connectionString: a.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(
        `
        SELECT task_id, to_state, COUNT(*)::int AS n FROM task_event
        WHERE workflow_id = ANY($1) GROUP BY task_id, to_state HAVING COUNT(*) > 1`,
        [workflows.map((w) => w.id)],
      );
      expect(rows).toEqual([]);
      const finished = await db.query(
        `SELECT COUNT(*)::int AS n FROM workflow WHERE id = ANY($1) AND finished_at IS NOT NULL`,
        [workflows.map((w) => w.id)],
      );
      expect(finished.rows[0].n).toBe(workflowCount);
    } finally {
      await db.end();
    }
  }, 150_000);

  it("sets and judges leases by the database clock, though one replica's host clock runs 20 s ahead", async () => {
    const skewed = await Api.start({
      databaseUrl: a.databaseUrl,
      prefix: a.prefix,
      env: { NODE_OPTIONS: `--require ${resolve('test/support/skewed-clock.cjs')}`, TEST_CLOCK_SKEW_MS: '20000' },
    });
    try {
      const t = `skew-${Date.now()}`;
      const wf = await a.createWorkflow(
        workflow({ sealed: true, tasks: [task('leased', { tags: [t], lease_s: 3, retry: { count: 1 } })] }),
      );
      const [leased] = await skewed.poll([t], { wait_s: 10 });
      expect(leased.name).toBe('leased');
      // Set by the skewed replica, the lease still ends 3 s from now by the database's clock.
      const expiresIn = Date.parse(leased.lease.expires_at) - Date.now();
      expect(expiresIn).toBeGreaterThan(1000);
      expect(expiresIn).toBeLessThan(5000);
      // A report arriving in time at the skewed replica is accepted...
      const started = Date.now();
      expect((await skewed.post(`/v1/tasks/${leased.id}/heartbeat`, { lease_token: leased.lease.token })).status).toBe(
        200,
      );
      // ...and with no more heartbeats the lease ends about 3 s later (it would take 23 s by the skewed clock).
      const retried = await waitFor(
        'the lease to expire',
        async () => {
          const x = await a.task(wf.id, 'leased');
          return x.attempt === 2 ? x : undefined;
        },
        15_000,
      );
      expect(retried.error.code).toBe('LEASE_EXPIRED');
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await skewed.stop();
    }
  });
});
