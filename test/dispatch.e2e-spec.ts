import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { Api, redisUrl, task, waitFor, waitForWorkflow, workflow, type LeasedTask } from './support/harness.js';

/** How ready tasks reach workers: tags, leases, long-polls, and Redis as a mere carrier. */
describe('dispatch by tag', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    await api.stop();
  });

  it('runs A on server X, B on Y and C on X after A, added one by one while the workflow runs', async () => {
    const x = (await api.post('/v1/workers', { name: 'x', tags: ['server-x'] })).body;
    const wf = await api.createWorkflow(workflow());
    expect((await api.post(`/v1/workflows/${wf.id}/tasks`, task('A', { tags: ['server-x'] }))).status).toBe(201);
    expect((await api.post(`/v1/workflows/${wf.id}/tasks`, task('B', { tags: ['server-y'] }))).status).toBe(201);
    expect(
      (await api.post(`/v1/workflows/${wf.id}/tasks`, task('C', { tags: ['server-x'], requires: ['A'] }))).status,
    ).toBe(201);
    await api.post(`/v1/workflows/${wf.id}/seal`);

    const onX = await api.poll(['server-x'], { wait_s: 5, max_tasks: 10, worker_id: x.id });
    expect(onX.map((t) => t.name)).toEqual(['A']); // C waits for A
    expect((await api.get(`/v1/workers/${x.id}`)).body.running_task_ids).toEqual([onX[0].id]);
    const onY = await api.take(['server-y']);
    expect(onY.name).toBe('B');
    expect(onY.worker_id).toBeNull();

    expect((await api.complete(onX[0], { built: true })).status).toBe(200);
    const c = await api.take(['server-x']);
    expect(c.name).toBe('C');
    expect(c.state).toBe('RUNNING');
    await api.complete(c);
    expect((await api.workflow(wf.id)).state).toBe('RUNNING'); // B still runs
    await api.complete(onY);
    const done = await waitForWorkflow(api, wf.id, ['SUCCESS']);
    expect(done.task_counts.SUCCESS).toBe(3);
    expect(done.finished_at).not.toBeNull();
  });

  it('offers a task only to polls that have every tag the task carries (capabilities)', async () => {
    const wf = await api.createWorkflow(workflow({ tasks: [task('t', { tags: ['linux', 'web', 'eu'] })] }));
    expect(await api.poll(['db'])).toEqual([]);
    expect(await api.poll(['web', 'linux'])).toEqual([]);
    const [got] = await api.poll(['eu', 'linux', 'mac', 'web'], { wait_s: 5 });
    expect(got.workflow_id).toBe(wf.id);
    expect(got.lease.token).toEqual(expect.any(String));
    expect(new Date(got.lease.expires_at).getTime()).toBeGreaterThan(Date.now());
  });

  it('hands out at most max_tasks, oldest ready first', async () => {
    const tag = `batch-${Date.now()}`;
    const wf = await api.createWorkflow(
      workflow({ tasks: Array.from({ length: 5 }, (_, i) => task(`n${i}`, { tags: [tag] })) }),
    );
    const first = await api.poll([tag], { max_tasks: 3, wait_s: 5 });
    expect(first.map((t) => t.name)).toEqual(['n0', 'n1', 'n2']);
    const rest = await api.poll([tag], { max_tasks: 10 });
    expect(rest.map((t) => t.name)).toEqual(['n3', 'n4']);
    expect(rest.every((t) => t.workflow_id === wf.id)).toBe(true);
  });

  it('takes turns between the tag sets a poll fits, so a backlog on one does not starve the others', async () => {
    const [big, small] = [`big-${Date.now()}`, `small-${Date.now()}`];
    await api.createWorkflow(
      workflow({ sealed: true, tasks: Array.from({ length: 20 }, (_, i) => task(`big${i}`, { tags: [big] })) }),
    );
    await api.createWorkflow(
      workflow({ sealed: true, tasks: Array.from({ length: 4 }, (_, i) => task(`small${i}`, { tags: [small] })) }),
    );
    const names: string[] = [];
    for (let i = 0; i < 8; i++) names.push(...(await api.poll([big, small], { wait_s: 5 })).map((t) => t.name));
    // The backlog came first, yet the small tag set's tasks are not left until it is done.
    expect(names.filter((n) => n.startsWith('small'))).toHaveLength(4);
    expect(names.filter((n) => n.startsWith('big'))).toEqual(['big0', 'big1', 'big2', 'big3']); // oldest first within a tag set
  });

  it('gives each task to exactly one of many concurrent polls', async () => {
    const tag = `race-${Date.now()}`;
    await api.createWorkflow(workflow({ tasks: Array.from({ length: 40 }, (_, i) => task(`r${i}`, { tags: [tag] })) }));
    const polls = await Promise.all(Array.from({ length: 12 }, () => api.poll([tag], { max_tasks: 5, wait_s: 1 })));
    const ids = polls.flat().map((t) => t.id);
    expect(ids).toHaveLength(40);
    expect(new Set(ids).size).toBe(40);
  });

  it('wakes a parked long-poll as soon as a matching task becomes ready', async () => {
    const tag = `wake-${Date.now()}`;
    const wf = await api.createWorkflow(workflow());
    const started = Date.now();
    const parked = api.poll([tag], { wait_s: 20 });
    await api.pollsParked();
    await api.post(`/v1/workflows/${wf.id}/tasks`, task('late', { tags: [tag] }));
    const [got] = await parked;
    expect(got.name).toBe('late');
    expect(Date.now() - started).toBeLessThan(10_000); // long before the 20 s wait ran out
  });

  it('hands tasks a report releases straight to the polls parked here, one each, and their leases work', async () => {
    const [tagA, tagB] = [`src-${Date.now()}`, `dst-${Date.now()}`];
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('a', { tags: [tagA] }),
          ...['b1', 'b2', 'b3'].map((n) => task(n, { tags: [tagB], requires: ['a'] })),
        ],
      }),
    );
    const a = await api.take([tagA]);
    const handedBefore = (await api.metric('tagflow_tasks_handed_directly_total')) || 0;
    const parked = Array.from({ length: 5 }, () => api.poll([tagB], { wait_s: 3 }));
    await api.pollsParked(5);
    expect((await api.complete(a)).status).toBe(200);
    const answers = await Promise.all(parked);
    // Three polls got one task each; the other two had nothing to take and answered empty.
    expect(answers.map((x) => x.length).sort()).toEqual([0, 0, 1, 1, 1]);
    const got = answers.flat();
    expect(got.map((t) => t.name).sort()).toEqual(['b1', 'b2', 'b3']);
    expect((await api.metric('tagflow_tasks_handed_directly_total')) - handedBefore).toBe(3);
    for (const t of got) {
      expect((await api.post(`/v1/tasks/${t.id}/heartbeat`, { lease_token: t.lease.token })).status).toBe(200);
      expect((await api.complete(t)).status).toBe(200);
    }
    await waitForWorkflow(api, wf.id, ['SUCCESS']);
    expect(await api.poll([tagB], { wait_s: 0 })).toEqual([]); // nothing left queued for them
  });

  it("hands the task a report releases to the same request's poll, in the report's own transaction", async () => {
    const t = `hop-${Date.now()}`;
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('a', { tags: [t] }),
          task('b', { tags: [t], requires: ['a'] }),
          task('c', { tags: [t], requires: ['b'] }),
        ],
      }),
    );
    // Asking for more than there is: the poll learns that the tag set's queue is empty.
    let [held] = await api.poll([t], { max_tasks: 5, wait_s: 5 });
    expect(held.name).toBe('a');
    const handedBefore = (await api.metric('tagflow_tasks_handed_directly_total')) || 0;
    for (const next of ['b', 'c']) {
      const r = await api.post('/v1/tasks/report', {
        reports: [{ task_id: held.id, status: 'complete', lease_token: held.lease.token }],
        poll: { tags: [t], wait_s: 0 },
      });
      expect(r.status).toBe(200);
      expect(r.body.results).toEqual([{ task_id: held.id, status: 200 }]);
      expect(r.body.tasks.map((x: LeasedTask) => x.name)).toEqual([next]);
      held = r.body.tasks[0];
    }
    // Both were leased as they became READY, never queued.
    expect((await api.metric('tagflow_tasks_handed_directly_total')) - handedBefore).toBe(2);
    expect((await api.post(`/v1/tasks/${held.id}/heartbeat`, { lease_token: held.lease.token })).status).toBe(200);
    expect((await api.complete(held)).status).toBe(200);
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS'])).state).toBe('SUCCESS');
    // The history tells each hop as it happened, though one transaction wrote it: the report,
    // then the release, then the lease (on PostgreSQL the claim's statement writes all three).
    const history = (await api.get(`/v1/workflows/${wf.id}/events?limit=100`)).body.items as {
      name?: string;
      to: string;
      reason: string;
    }[];
    const hops = history.filter((e) => e.name).map((e) => `${e.name} ${e.to}`);
    expect(hops.slice(hops.indexOf('a RUNNING'))).toEqual([
      'a RUNNING',
      'a SUCCESS',
      'b READY',
      'b RUNNING',
      'b SUCCESS',
      'c READY',
      'c RUNNING',
      'c SUCCESS',
    ]);
    expect(history.filter((e) => e.to === 'RUNNING' && e.name).map((e) => e.reason)).toEqual([
      'leased',
      'leased',
      'leased',
    ]);
  });

  it("leaves a released task to the queue when an older one waits there for the report's poll", async () => {
    const [t, other] = [`fifo-${Date.now()}`, `fifo-src-${Date.now()}`];
    await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('older', { tags: [t] }),
          task('a', { tags: [other] }),
          task('released', { tags: [t], requires: ['a'] }),
        ],
      }),
    );
    const a = await api.take([other]);
    const r = await api.post('/v1/tasks/report', {
      reports: [{ task_id: a.id, status: 'complete', lease_token: a.lease.token }],
      poll: { tags: [t], wait_s: 5 },
    });
    expect(r.status).toBe(200);
    // Oldest ready first within a tag set, whether or not a report of the same request released the other.
    expect(r.body.tasks.map((x: LeasedTask) => x.name)).toEqual(['older']);
    expect((await api.take([t])).name).toBe('released');
  });

  it("does not hand a stopping worker's hand-back to that worker's own poll in the same request", async () => {
    const t = `giveback-${Date.now()}`;
    const wf = await api.createWorkflow(
      workflow({ sealed: true, tasks: [task('a', { tags: [t], retry: { count: 0 } })] }),
    );
    const worker = (await api.post('/v1/workers', { name: 'stops-mid-request', tags: [t] })).body;
    const [a] = await api.poll([t], { max_tasks: 5, wait_s: 5, worker_id: worker.id });
    // The worker hands its task back as it stops, and polls in the same request: the task, READY
    // again, fits that poll, but a stopping worker may not poll (409). Handed to that poll and
    // given back, it would have spent a second attempt (and a second free hand-back).
    const r = await api.post('/v1/tasks/report', {
      reports: [
        {
          task_id: a.id,
          status: 'fail',
          lease_token: a.lease.token,
          error: { message: 'stopping', code: 'WORKER_SHUTDOWN' },
        },
      ],
      poll: { tags: [t], wait_s: 0, worker_id: worker.id },
    });
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('WORKER_STOPPING');
    expect(await api.task(wf.id, 'a')).toMatchObject({ state: 'READY', attempt: 2 });
    const again = await api.take([t]);
    expect(again.name).toBe('a');
    expect((await api.complete(again)).status).toBe(200);
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS'])).state).toBe('SUCCESS');
  });

  it('hands 1,000 tasks added in one request to 1,000 parked polls, one each', async () => {
    const tag = `burst-${Date.now()}`;
    const n = 1000;
    const parked = Array.from({ length: n }, () => api.poll([tag], { wait_s: 30 }));
    await api.pollsParked(n);
    const wf = await api.createWorkflow(workflow());
    const tasks = Array.from({ length: n }, (_, i) => task(`t${i}`, { tags: [tag] }));
    // All claimed at once for the parked polls (on SQLite this claim was a 500: one statement
    // too deep for it).
    expect((await api.post(`/v1/workflows/${wf.id}/tasks`, { tasks })).status).toBe(201);
    const answers = await Promise.all(parked);
    expect(answers.filter((a) => a.length === 1)).toHaveLength(n);
    expect(new Set(answers.flat().map((t) => t.name)).size).toBe(n);
  }, 90_000);

  it('forgets a parked poll whose client went away: its task goes to the next poll, not to a closed socket', async () => {
    const tag = `gone-${Date.now()}`;
    const leaving = new AbortController();
    const abandoned = fetch(`${api.url}/v1/tasks/poll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tags: [tag], wait_s: 30 }),
      signal: leaving.signal,
    }).catch(() => null);
    await api.pollsParked(1);
    leaving.abort();
    await abandoned;
    await waitFor('the abandoned poll to leave', async () => (await api.metric('tagflow_polls_waiting')) === 0);
    const wf = await api.createWorkflow(workflow({ sealed: true, tasks: [task('after-leaving', { tags: [tag] })] }));
    const [got] = await api.poll([tag], { wait_s: 5 });
    expect(got?.name).toBe('after-leaving');
    expect((await api.complete(got)).status).toBe(200);
    await waitForWorkflow(api, wf.id, ['SUCCESS']);
  });

  it('returns an empty list when the wait ends with nothing to do', async () => {
    const started = Date.now();
    expect(await api.poll([`idle-${Date.now()}`], { wait_s: 1 })).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('grows a tag selector while the task waits, and waits for every member', async () => {
    const tag = `grow-${Date.now()}`;
    const wf = await api.createWorkflow(
      workflow({ tasks: [task('lb', { tags: ['lb'], requires_tags: [tag] }), task('web1', { tags: [tag] })] }),
    );
    await api.post(`/v1/workflows/${wf.id}/tasks`, task('web2', { tags: [tag] }));
    const a = await api.take([tag]);
    await api.complete(a);
    expect((await api.task(wf.id, 'lb')).state).toBe('WAITING'); // web2 joined while lb waited
    const b = await api.take([tag]);
    expect(b.name).not.toBe(a.name);
    await api.complete(b);
    await waitFor('lb to be READY', async () => (await api.task(wf.id, 'lb')).state === 'READY');
  });

  it('holds a selector that matches nothing until the workflow is sealed', async () => {
    const wf = await api.createWorkflow(workflow({ tasks: [task('after-all', { requires_tags: ['never-added'] })] }));
    expect((await api.task(wf.id, 'after-all')).state).toBe('WAITING');
    await api.post(`/v1/workflows/${wf.id}/seal`);
    expect((await api.task(wf.id, 'after-all')).state).toBe('READY');
  });

  it('never makes a task wait on itself through its own tag', async () => {
    const wf = await api.createWorkflow(
      workflow({ sealed: true, tasks: [task('solo', { tags: ['grp'], requires_tags: ['grp'] })] }),
    );
    expect((await api.task(wf.id, 'solo')).state).toBe('READY');
  });

  it('releases a task that selects its own tag once the other members are done', async () => {
    const t = `self-${Date.now()}`;
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('m1', { tags: [t] }),
          task('m2', { tags: [t] }),
          task('joiner', { tags: [t], requires_tags: [t] }),
        ],
      }),
    );
    await api.complete(await api.take([t]));
    expect((await api.task(wf.id, 'joiner')).state).toBe('WAITING');
    await api.complete(await api.take([t]));
    const joiner = await api.take([t]);
    expect(joiner.name).toBe('joiner');
    await api.complete(joiner);
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'])).state).toBe('SUCCESS');
  });

  it('dispatches again every READY task within 10 s when Redis loses its data', async () => {
    const tag = `lost-${Date.now()}`;
    await api.createWorkflow(workflow({ tasks: Array.from({ length: 10 }, (_, i) => task(`l${i}`, { tags: [tag] })) }));
    const redis = new Redis(redisUrl());
    try {
      const keys = await redis.keys(`${api.prefix}:*`);
      expect(keys.length).toBeGreaterThan(0);
      await redis.del(...keys); // as if Redis restarted empty
      expect(await redis.keys(`${api.prefix}:ts-*`)).toEqual([]);
    } finally {
      redis.disconnect();
    }
    const got: string[] = [];
    await waitFor(
      'all 10 tasks to be offered again',
      async () => {
        got.push(...(await api.poll([tag], { max_tasks: 10, wait_s: 1 })).map((t) => t.name));
        return got.length >= 10;
      },
      10_000,
    );
    expect(new Set(got).size).toBe(10);
  });
});
