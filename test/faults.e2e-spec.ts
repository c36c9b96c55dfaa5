import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Api, freePort, task, waitFor, waitForWorkflow, workflow } from './support/harness.js';
import { OwnRedis } from './support/own-redis.js';
import { dbSnapshot, httpWorker, transitionCounts } from './support/faults.js';
import { alive, WorkerProcess } from './support/worker-process.js';

const uniq = () => Math.random().toString(36).slice(2, 10);
const scratch = mkdtempSync(join(tmpdir(), 'tagflow-faults-'));

async function allTasks(api: Api, workflowId: string): Promise<any[]> {
  const out: any[] = [];
  let cursor: string | null = null;
  do {
    const r: any = await api.get(`/v1/workflows/${workflowId}/tasks?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    out.push(...r.body.items);
    cursor = r.body.next_cursor;
  } while (cursor);
  return out;
}

/** Tasks whose recorded history shows `state` more or less than once. */
async function notExactlyOnce(
  databaseUrl: string,
  workflowIds: string[],
  ids: string[],
  state: string,
): Promise<string[]> {
  const counts = await transitionCounts(databaseUrl, workflowIds);
  return ids
    .filter((id) => (counts.get(id)?.get(state) ?? 0) !== 1)
    .map((id) => `${id}: ${state} x${counts.get(id)?.get(state) ?? 0}`);
}

/** Processes die, Redis forgets: nothing is lost, nothing is done twice. */
describe('faults', () => {
  let api: Api;
  // Its own Redis: one test flushes it and kills its clients, which the suites beside it must not meet.
  let redis: OwnRedis;
  beforeAll(async () => {
    redis = await OwnRedis.start();
    api = await Api.start({ env: { PORT: String(await freePort()), REDIS_URL: redis.url } });
  });
  afterAll(async () => {
    await api?.stop();
    await redis?.remove();
  });

  it('the API paused (SIGSTOP) past a lease: the late report is refused, the task runs again and finishes once', async () => {
    const t = `stop-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({ sealed: true, tasks: [task('paused', { tags: [t], lease_s: 2, retry: { count: 2 } })] }),
    );
    const first = await api.take([t], 10);
    api.proc.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 4000)); // the API is frozen: nothing to poll for, only time passing
    api.proc.kill('SIGCONT');
    // Sent at once: it arrives after its lease ended (judged at arrival, whether or not the reconciler ran yet).
    const late = await api.post(`/v1/tasks/${first.id}/complete`, {
      lease_token: first.lease.token,
      output: { by: 'attempt 1' },
    });
    expect(late.status).toBe(409);
    const second = await api.take([t], 15);
    expect(second.attempt).toBe(2);
    expect(
      (
        await api.post(`/v1/tasks/${second.id}/complete`, {
          lease_token: second.lease.token,
          output: { by: 'attempt 2' },
        })
      ).status,
    ).toBe(200);
    const done = await waitForWorkflow(api, wf.id, ['SUCCESS']);
    expect(done.task_counts.SUCCESS).toBe(1);
    expect(await api.task(wf.id, 'paused')).toMatchObject({ attempt: 2, output: { by: 'attempt 2' } });
    expect(await notExactlyOnce(api.databaseUrl, [wf.id], [first.id], 'SUCCESS')).toEqual([]);
  });

  it('kill -9 a worker mid-task: the task runs again elsewhere after its lease, the late report is refused, it finishes once', async () => {
    // Invariant: exactly one SUCCESS for the task, from the second attempt; the dead lease's report changes nothing.
    const t = `kw-${uniq()}`;
    const marks = join(scratch, t);
    const a = await WorkerProcess.start({ api: api.url, tags: [t], name: 'doomed' });
    let orphanPid = 0;
    try {
      const wf = await api.createWorkflow(
        workflow({
          sealed: true,
          tasks: [
            task('job', {
              tags: [t],
              lease_s: 2,
              retry: { count: 2 },
              action: {
                type: 'shell',
                command: `echo "$TAGFLOW_LEASE_TOKEN" > ${marks}.token.$TAGFLOW_ATTEMPT; echo $$ > ${marks}.pid.$TAGFLOW_ATTEMPT; if [ "$TAGFLOW_ATTEMPT" = 1 ]; then exec sleep 60; fi; echo "{\\"attempt\\": $TAGFLOW_ATTEMPT}" > "$TAGFLOW_OUTPUT"`,
              },
            }),
          ],
        }),
      );
      await waitFor(
        'attempt 1 to start on the doomed worker',
        async () => existsSync(`${marks}.pid.1`) && readFileSync(`${marks}.pid.1`, 'utf8').trim() !== '',
      );
      orphanPid = Number(readFileSync(`${marks}.pid.1`, 'utf8'));
      await a.kill9();
      const b = await WorkerProcess.start({ api: api.url, tags: [t], name: 'survivor' });
      try {
        const done = await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'], 30_000);
        expect(done.state).toBe('SUCCESS');
      } finally {
        await b.stop();
      }
      const job = await api.task(wf.id, 'job');
      expect(job).toMatchObject({ attempt: 2, output: { attempt: 2 } });
      const late = await api.post(`/v1/tasks/${job.id}/complete`, {
        lease_token: readFileSync(`${marks}.token.1`, 'utf8').trim(),
        output: { attempt: 1 },
      });
      expect(late.status).toBe(409);
      expect((await api.task(wf.id, 'job')).output).toEqual({ attempt: 2 });
      expect(await notExactlyOnce(api.databaseUrl, [wf.id], [job.id], 'SUCCESS')).toEqual([]);
      const events = (await api.get(`/v1/tasks/${job.id}/events`)).body.map((e: any) => e.reason ?? '');
      expect(events.some((r: string) => r.includes('LEASE_EXPIRED'))).toBe(true);
    } finally {
      if (orphanPid && alive(orphanPid)) process.kill(orphanPid, 'SIGKILL'); // the dead worker could not stop its child
    }
  });

  it('kill -9 the API with 1,000 tasks in flight: after a restart every task finishes once, outputs intact', async () => {
    // Invariants: all 1,000 SUCCESS; one SUCCESS transition each; each output matches its input.
    const t = `ka-${uniq()}`;
    const port = new URL(api.url).port;
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: Array.from({ length: 1000 }, (_, i) =>
          task(`n${i}`, { tags: [t], input: { n: i }, lease_s: 3, retry: { count: 5 } }),
        ),
      }),
    );
    let stop = false;
    const workers = Array.from({ length: 6 }, () =>
      httpWorker(
        () => api,
        [t],
        (x) => ({ n: x.input.n, doubled: (x.input.n as number) * 2 }),
        () => stop,
      ),
    );
    const running = workers.map((w) => w.run());
    await waitFor(
      'some work to be done before the crash',
      async () => (await api.workflow(wf.id)).task_counts.SUCCESS >= 150,
      30_000,
    );
    await api.kill9();
    api = await Api.start({
      databaseUrl: api.databaseUrl,
      prefix: api.prefix,
      env: { PORT: port, REDIS_URL: redis.url },
    });
    try {
      await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'], 90_000);
    } finally {
      stop = true;
      await Promise.all(running);
    }
    const tasks = await allTasks(api, wf.id);
    const wrong = tasks
      .filter((x) => x.state !== 'SUCCESS' || x.output?.n !== x.input.n || x.output?.doubled !== x.input.n * 2)
      .map((x) => `${x.id} ${x.name} ${x.state} ${JSON.stringify(x.output)}`);
    expect(wrong).toEqual([]);
    expect(tasks).toHaveLength(1000);
    expect(
      await notExactlyOnce(
        api.databaseUrl,
        [wf.id],
        tasks.map((x) => x.id),
        'SUCCESS',
      ),
    ).toEqual([]);
    const leases = new Map<string, number>();
    for (const w of workers)
      for (const l of w.leased) leases.set(`${l.id}/${l.attempt}`, (leases.get(`${l.id}/${l.attempt}`) ?? 0) + 1);
    expect([...leases].filter(([, n]) => n > 1).map(([k]) => k)).toEqual([]);
  }, 180_000); // its waits: 30 s for progress, a restart, 90 s for the rest

  it('Redis restarted empty under load: every READY task is queued again within 10 s, and all finish once', async () => {
    // Invariants: within 10 s of the loss every READY task's job is back in Redis; all SUCCESS once.
    const t = `rl-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: Array.from({ length: 400 }, (_, i) =>
          task(`r${i}`, { tags: [t], input: { n: i }, lease_s: 3, retry: { count: 5 } }),
        ),
      }),
    );
    let paused = false;
    let stop = false;
    const workers = Array.from({ length: 4 }, () =>
      httpWorker(
        () => api,
        paused ? ['paused-nothing'] : [t],
        (x) => ({ n: x.input.n }),
        () => stop || paused,
      ),
    );
    let running = workers.map((w) => w.run());
    await waitFor('some progress', async () => (await api.workflow(wf.id)).task_counts.SUCCESS >= 50, 30_000);
    paused = true;
    await Promise.all(running);

    const raw = new Redis(redis.url);
    try {
      await raw.flushall(); // what a restart without persistence leaves
      await raw.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      await raw.client('KILL', 'TYPE', 'pubsub');
      const lostAt = Date.now();
      const ready = (await allTasks(api, wf.id)).filter((x) => x.state === 'READY');
      expect(ready.length).toBeGreaterThan(0);
      const missing = async () => {
        const pipe = raw.pipeline();
        for (const x of ready) pipe.keys(`${api.prefix}:ts-*:${x.id}-${x.attempt}`);
        return ((await pipe.exec()) ?? [])
          .map(([, keys], i) => ((keys as string[]).length ? null : ready[i].id))
          .filter(Boolean);
      };
      await waitFor('every READY task to be queued again', async () => (await missing()).length === 0, 10_000);
      expect(Date.now() - lostAt).toBeLessThan(10_000);
    } finally {
      raw.disconnect();
    }
    paused = false;
    running = workers.map((w) => w.run());
    try {
      await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'], 60_000);
    } finally {
      stop = true;
      await Promise.all(running);
    }
    const tasks = await allTasks(api, wf.id);
    expect(tasks.filter((x) => x.state !== 'SUCCESS').map((x) => `${x.id} ${x.state}`)).toEqual([]);
    expect(
      await notExactlyOnce(
        api.databaseUrl,
        [wf.id],
        tasks.map((x) => x.id),
        'SUCCESS',
      ),
    ).toEqual([]);
  });

  it('1,000 generated malformed requests: no 5xx, and the database is unchanged', async () => {
    // Invariant: every answer is a 4xx with a message; the database's rows are the same before and after.
    const wf = await api.createWorkflow(workflow({ tasks: [task('target')] }));
    const target = await api.task(wf.id, 'target');
    const before = await dbSnapshot(api.databaseUrl);
    const requests = malformedRequests(1000, wf.id, target.id, mulberry32(42));
    const bad: string[] = [];
    for (const r of requests) {
      const res = await api.request(r.method, r.path, r.body, r.headers);
      if (res.status >= 500 || res.status < 400 || typeof res.body?.message !== 'string')
        bad.push(`${res.status} ${r.method} ${r.path} ${String(r.body).slice(0, 120)}`);
    }
    expect(bad).toEqual([]);
    expect(await dbSnapshot(api.databaseUrl)).toEqual(before);
  });
});

/** A small seeded PRNG, so a failure can be replayed. */
function mulberry32(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Req {
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

/** Requests each guaranteed invalid: a valid shape with one defect, or garbage. */
function malformedRequests(n: number, wfId: string, taskId: string, rnd: () => number): Req[] {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const huge = 'x'.repeat(2_000_000);
  const deep = `${'['.repeat(3000)}${']'.repeat(3000)}`;
  const wrong = [null, 42, -1, 1.5, true, 'str', [], {}, [1, 'a'], { a: 1 }, '', ' ', '\u0000', 'x'.repeat(300)];
  const validTask = { name: 'ok', action: { type: 'noop' }, tags: ['never-polled'] };
  const defects: (() => Req)[] = [
    () => ({
      method: 'POST',
      path: '/v1/workflows',
      body: JSON.stringify({
        name:
          pick(wrong.filter((w) => typeof w !== 'string' || w.length !== 0)) === 'str'
            ? 42
            : pick([null, 42, true, [], {}, 'bad name', 'x'.repeat(200)]),
      }),
    }),
    () => ({
      method: 'POST',
      path: '/v1/workflows',
      body: JSON.stringify({
        name: 'w',
        tasks: pick([
          42,
          'x',
          {},
          [42],
          [{}],
          [{ action: pick(wrong) }],
          [{ ...validTask, tags: pick([[1], ['bad tag'], 'x', Array(40).fill('t')]) }],
        ]),
      }),
    }),
    () => {
      const invalid: Record<string, unknown[]> = {
        retry: [-5, 'x', { count: -1 }, { backoff: 0 }],
        lease_s: [0, -5, 'x', 1e12],
        timeout_s: [0, 'x', 1.5],
        requires: ['x', [null], [1]],
        on_error: ['x', [{}], [{ run: [] }], [{ run: [{}] }]],
        input: ['x', [1], 42],
        produces: [['bad key'], 'k', [1]],
        revert: [{}, 'x'],
      };
      const field = pick(Object.keys(invalid));
      return {
        method: 'POST',
        path: '/v1/workflows',
        body: JSON.stringify({ name: 'w', tasks: [{ ...validTask, [field]: pick(invalid[field]) }] }),
      };
    },
    () => ({
      method: 'POST',
      path: '/v1/workflows',
      body: JSON.stringify({ name: 'w', sealed: pick(['yes', 1, null]), on_failure: 'explode' }),
    }),
    () => ({ method: 'POST', path: '/v1/workflows', body: JSON.stringify({ name: 'w', input: { blob: huge } }) }),
    () => ({ method: 'POST', path: '/v1/workflows', body: `{"name":"w","input":{"d":${deep}}}` }),
    () => ({
      method: 'POST',
      path: '/v1/workflows',
      body: pick(['{', 'nul', '[1,2]', '"str"', '{"name":', '\u0000\u0001']),
    }),
    () => ({
      method: 'POST',
      path: '/v1/workflows',
      body: JSON.stringify({ name: 'w', tasks: [validTask, { ...validTask }] }),
    }),
    () => ({
      method: 'POST',
      path: '/v1/workflows',
      body: JSON.stringify({ name: 'w', tasks: [{ ...validTask, requires: ['ghost'] }] }),
    }),
    () => ({
      method: 'POST',
      path: `/v1/workflows/${wfId}/tasks`,
      body: JSON.stringify(
        pick([
          { tasks: [] },
          { tasks: 'x' },
          { action: 42 },
          { ...validTask, name: 'target' },
          { tasks: Array(1001).fill(validTask) },
        ]),
      ),
    }),
    () => ({
      method: 'POST',
      path: `/v1/workflows/${pick(['nope', '123', '00000000-0000-4000-8000-000000000000', '../etc', '%00'])}/${pick(['seal', 'cancel', 'pause', 'tasks'])}`,
      body: '{}',
    }),
    () => ({
      method: 'GET',
      path: `/v1/workflows?${pick(['limit=0', 'limit=-1', 'limit=x', 'limit=501', 'state=NOPE', 'cursor=!!', 'cursor=' + 'a'.repeat(600)])}`,
    }),
    () => ({
      method: 'GET',
      path: `/v1/tasks/${pick(['x', '1', 'null', '00000000-0000-4000-8000-000000000000'])}${pick(['', '?wait_s=-1', '?wait_s=999', '?wait_s=x'])}`,
    }),
    () => ({
      method: 'POST',
      path: '/v1/tasks/poll',
      body: JSON.stringify(
        pick([
          {},
          { tags: 'x' },
          { tags: [1] },
          { tags: [], wait_s: 61 },
          { tags: [], max_tasks: 0 },
          { tags: [], max_tasks: 101 },
          { tags: [], worker_id: 'nope' },
        ]),
      ),
    }),
    () => ({
      method: 'POST',
      path: `/v1/tasks/${taskId}/${pick(['complete', 'fail', 'heartbeat'])}`,
      body: JSON.stringify(
        pick([
          {},
          { lease_token: 42 },
          { lease_token: 'forged' },
          { lease_token: 'forged', error: {} },
          { lease_token: 'x'.repeat(100) },
        ]),
      ),
    }),
    () => ({
      method: 'PATCH',
      path: `/v1/tasks/${taskId}`,
      body: JSON.stringify(
        pick([{ name: 'renamed' }, { tags: ['bad tag'] }, { requires: ['ghost'] }, { lease_s: 0 }, { action: {} }]),
      ),
    }),
    () => ({
      method: 'POST',
      path: '/v1/tasks',
      body: JSON.stringify(
        pick([
          {},
          { action: 'noop' },
          { action: { type: '' } },
          { action: { type: 'noop' }, workflow_name: 'bad name!' },
        ]),
      ),
    }),
    () => ({
      method: 'POST',
      path: '/v1/workers',
      body: JSON.stringify(pick([{}, { name: '' }, { name: 'a b' }, { name: 'w', tags: [null] }])),
    }),
    () => ({
      method: 'PUT',
      path: `/v1/workflows/${wfId}/data/${pick(['bad key', 'tasks.x.output', '..', 'a'.repeat(200)])}`,
      body: JSON.stringify({ value: 1 }),
    }),
    () => ({
      method: 'PUT',
      path: `/v1/workflows/${wfId}/data/k`,
      body: JSON.stringify(pick([{}, { value: 'x'.repeat(300_000) }, { val: 1 }])),
    }),
    () => ({ method: 'DELETE', path: `/v1/workflows/${pick([wfId, 'nope'])}` }),
    () => ({ method: pick(['PUT', 'DELETE', 'PATCH']), path: '/v1/tasks/poll', body: '{}' }),
  ];
  return Array.from({ length: n }, (): Req => {
    const r = pick(defects)();
    const headers: Record<string, string> = r.body !== undefined ? { 'content-type': 'application/json' } : {};
    return { ...r, headers };
  });
}
