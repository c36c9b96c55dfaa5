import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Api, task, waitFor, waitForWorkflow, workflow } from './support/harness.js';
import type { LeasedTask } from './support/harness.js';

/** Retries, on_error handlers, on_failure modes and leases that run out. */
describe('failures and leases', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    await api.stop();
  });
  const tag = () => `f-${Math.random().toString(36).slice(2, 10)}`;

  it('retries a failed attempt, and answers a repeated report the same way', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({ sealed: true, tasks: [task('flaky', { tags: [t], retry: { count: 1 } })] }),
    );
    const first = await api.take([t]);
    expect(first.attempt).toBe(1);
    const r1 = await api.fail(first, { message: 'disk full', code: 'ENOSPC' }, { stderr: 'no space', exit_code: 1 });
    expect(r1.status).toBe(200);
    expect(r1.body).toMatchObject({ state: 'READY', attempt: 2, error: { message: 'disk full', code: 'ENOSPC' } });
    const again = await api.fail(first, { message: 'disk full', code: 'ENOSPC' });
    expect(again.status).toBe(200); // same report, same answer
    expect(again.body.attempt).toBe(2); // ...and nothing happened twice
    expect((await api.complete(first)).status).toBe(409); // a different report on that lease

    const second = await api.take([t]);
    expect(second.attempt).toBe(2);
    expect(second.lease.token).not.toBe(first.lease.token);
    expect((await api.fail(first, { message: 'disk full' })).status).toBe(409); // that lease is no longer current
    await api.complete(second, { ok: true });
    const done = await waitForWorkflow(api, wf.id, ['SUCCESS']);
    expect(done.task_counts.SUCCESS).toBe(1);
    const events = (await api.get(`/v1/tasks/${first.id}/events`)).body.map((e: any) => `${e.from ?? '-'}>${e.to}`);
    expect(events).toEqual([
      '->WAITING',
      'WAITING>READY',
      'READY>RUNNING',
      'RUNNING>READY',
      'READY>RUNNING',
      'RUNNING>SUCCESS',
    ]);
  });

  it('answers each of many concurrent reports on its own: duplicates alike, a stale token refused, dependents released once', async () => {
    const t = tag();
    // Two workflows; in each, `after` waits for both `a` and `b`.
    const wfs = await Promise.all(
      [1, 2].map(() =>
        api.createWorkflow(
          workflow({
            sealed: true,
            tasks: [
              task('a', { tags: [t] }),
              task('b', { tags: [t] }),
              task('after', { tags: [`${t}-after`], requires: ['a', 'b'] }),
            ],
          }),
        ),
      ),
    );
    const leased = await api.poll([t], { max_tasks: 10, wait_s: 5 });
    expect(leased).toHaveLength(4);
    const [x, ...rest] = leased;
    const stale = { ...rest[0], lease: { ...rest[0].lease, token: x.lease.token } };
    const answers = await Promise.all([
      api.complete(x, { n: 1 }),
      api.complete(x, { n: 1 }),
      api.complete(stale),
      ...rest.map((r) => api.complete(r, { n: 2 })),
    ]);
    expect(answers.map((r) => r.status)).toEqual([200, 200, 409, 200, 200, 200]);
    expect(answers[1].body).toEqual(answers[0].body);
    expect(answers[2].body.message).toMatch(/lease_token is not the current lease/);
    for (const r of answers.filter((a) => a.status === 200)) expect(r.body.state).toBe('SUCCESS');

    const afters = [await api.take([`${t}-after`]), await api.take([`${t}-after`])];
    expect(afters.map((a) => a.workflow_id).sort()).toEqual(wfs.map((w) => w.id).sort());
    expect(await api.poll([`${t}-after`])).toEqual([]); // released once each, not twice
    for (const a of afters) await api.complete(a);
    for (const wf of wfs) {
      const done = await waitForWorkflow(api, wf.id, ['SUCCESS']);
      expect(done.task_counts.SUCCESS).toBe(3);
    }
    const events = (await api.get(`/v1/tasks/${x.id}/events`)).body.map((e: any) => `${e.from ?? '-'}>${e.to}`);
    expect(events).toEqual(['->WAITING', 'WAITING>READY', 'READY>RUNNING', 'RUNNING>SUCCESS']);
  });

  it('waits out the retry delay before offering the next attempt', async () => {
    const t = tag();
    await api.createWorkflow(
      workflow({ tasks: [task('slow', { tags: [t], retry: { count: 2, delay_s: 1, backoff: 2 } })] }),
    );
    const first = await api.take([t]);
    const failedAt = Date.now();
    const r = await api.fail(first, { message: 'try later' });
    expect(new Date(r.body.ready_at).getTime()).toBeGreaterThanOrEqual(failedAt + 900);
    expect(await api.poll([t])).toEqual([]); // not yet
    const second = await api.take([t], 10);
    expect(Date.now() - failedAt).toBeGreaterThanOrEqual(900);
    expect(second.attempt).toBe(2);
  });

  it('fails for good at once when the worker says the error is not retryable', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({ sealed: true, tasks: [task('bad-input', { tags: [t], retry: { count: 5 } })] }),
    );
    const got = await api.take([t]);
    const r = await api.fail(got, { message: 'unknown package', code: 'BAD_ARGS', retryable: false });
    expect(r.body).toMatchObject({ state: 'ERROR', attempt: 1 });
    expect((await waitForWorkflow(api, wf.id, ['ERROR'])).state).toBe('ERROR');
  });

  it('takes a WORKER_SHUTDOWN hand-back outside the retry budget only from a registered worker, which may then not poll again', async () => {
    const t = `handback-${Date.now()}`;
    await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [task('a', { tags: [t], retry: { count: 0 } }), task('b', { tags: [t], retry: { count: 0 } })],
      }),
    );
    const shutdown = { message: 'stopping', code: 'WORKER_SHUTDOWN', retryable: true };
    const worker = (await api.post('/v1/workers', { name: 'stopping-one', tags: [t] })).body;
    const [first] = await api.poll([t], { wait_s: 5, worker_id: worker.id });
    expect(
      (await api.post(`/v1/tasks/${first.id}/fail`, { lease_token: first.lease.token, error: shutdown })).status,
    ).toBe(200);
    expect(await api.get(`/v1/tasks/${first.id}`).then((r) => r.body)).toMatchObject({
      state: 'READY',
      attempt: 2,
      error: { code: 'WORKER_SHUTDOWN' },
    });
    // The worker said it is stopping: under that id it polls no more.
    const again = await api.post('/v1/tasks/poll', { tags: [t], worker_id: worker.id, wait_s: 0 });
    expect(again.status).toBe(409);
    expect(again.body.message).toContain('registers again');
    expect((await api.get(`/v1/workers/${worker.id}`)).body.stopping_at).toEqual(expect.any(String));
    // A poll that named no worker cannot claim a stop: its WORKER_SHUTDOWN is an ordinary failed attempt.
    const anonymous = await api.take([t], 5);
    expect(
      (await api.post(`/v1/tasks/${anonymous.id}/fail`, { lease_token: anonymous.lease.token, error: shutdown }))
        .status,
    ).toBe(200);
    expect(await api.get(`/v1/tasks/${anonymous.id}`).then((r) => r.body)).toMatchObject({
      state: 'ERROR',
      attempt: anonymous.attempt,
      error: { code: 'WORKER_SHUTDOWN' },
    });
  });

  it('takes several reports and the next poll in one request, judging each report alone', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        on_failure: 'continue',
        tasks: ['a', 'b', 'c', 'd'].map((n) => task(n, { tags: [t], retry: { count: 0 } })),
      }),
    );
    const leased: LeasedTask[] = [];
    await waitFor(
      'three leases',
      async () => (
        leased.push(...(await api.poll([t], { wait_s: 1, max_tasks: 3 - leased.length }))),
        leased.length === 3
      ),
    );
    const [a, b, c] = leased;
    const reports = [
      { task_id: a.id, lease_token: a.lease.token, status: 'complete', output: { n: 1 } },
      { task_id: b.id, lease_token: 'not-the-lease', status: 'complete' },
      { task_id: c.id, lease_token: c.lease.token, status: 'fail', error: { message: 'boom', retryable: false } },
      { task_id: '00000000-0000-4000-8000-000000000000', lease_token: 'x', status: 'complete' },
    ];
    const r = await api.post('/v1/tasks/report', { reports, poll: { tags: [t], wait_s: 5 } });
    expect(r.status).toBe(200);
    expect(r.body.results.map((x: { status: number }) => x.status)).toEqual([200, 409, 200, 404]);
    expect(r.body.results[1]).toMatchObject({
      code: 'LEASE_STALE',
      message: expect.stringContaining('not the current lease'),
    });
    const big = await api.post('/v1/tasks/report', {
      reports: [
        { task_id: b.id, lease_token: b.lease.token, status: 'complete', output: { big: 'x'.repeat(300_000) } },
      ],
    });
    expect(big.body.results).toEqual([
      { task_id: b.id, status: 422, code: 'TOO_LARGE', message: expect.stringContaining('the limit is') },
    ]);
    // The poll was answered after the reports: the one task left.
    const left = ['a', 'b', 'c', 'd'].find((n) => !leased.some((x) => x.name === n));
    expect(r.body.tasks.map((x: { name: string }) => x.name)).toEqual([left]);
    expect(await api.task(wf.id, a.name)).toMatchObject({ state: 'SUCCESS', output: { n: 1 } });
    expect(await api.task(wf.id, b.name)).toMatchObject({ state: 'RUNNING' });
    expect(await api.task(wf.id, c.name)).toMatchObject({ state: 'ERROR', error: { message: 'boom' } });
    // The same reports again (a worker that lost the answer): the same results, nothing applied twice.
    const again = await api.post('/v1/tasks/report', { reports: reports.slice(0, 4) });
    expect(again.body).toEqual({ results: r.body.results.slice(0, 4), tasks: [] });
    // The whole request is refused for a malformed report, and for more than 100.
    const malformed = await api.post('/v1/tasks/report', {
      reports: [{ task_id: b.id, lease_token: b.lease.token, status: 'fail' }],
    });
    expect(malformed.status).toBe(400);
    expect(JSON.stringify(malformed.body)).toContain('error is required when status is fail');
    expect(
      (await api.post('/v1/tasks/report', { reports: Array.from({ length: 101 }, () => reports[0]) })).status,
    ).toBe(400);
    const twice = await api.post('/v1/tasks/report', { reports: [reports[0], reports[0]] });
    expect(twice.status).toBe(400);
    expect(twice.body.message).toContain('a task may appear once');
    expect(await api.task(wf.id, b.name)).toMatchObject({ state: 'RUNNING' });
  });

  it("extends all of a worker's leases in one heartbeat, each answered alone", async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({ sealed: true, tasks: ['p', 'q'].map((n) => task(n, { tags: [t], lease_s: 5 })) }),
    );
    const worker = (await api.post('/v1/workers', { name: 'beater', tags: [t] })).body;
    const leased: LeasedTask[] = [];
    await waitFor(
      'two leases',
      async () => (
        leased.push(...(await api.poll([t], { wait_s: 1, max_tasks: 2 - leased.length, worker_id: worker.id }))),
        leased.length === 2
      ),
    );
    const [p, q] = leased;
    expect((await api.post(`/v1/tasks/${q.id}/cancel`)).status).toBe(200);
    const beat = await api.post(`/v1/workers/${worker.id}/heartbeat`, {
      leases: [
        { task_id: p.id, lease_token: p.lease.token, progress: { step: 2 } },
        { task_id: q.id, lease_token: q.lease.token },
        { task_id: p.id, lease_token: 'stale' },
      ],
    });
    expect(beat.status).toBe(200);
    expect(beat.body.leases).toEqual([
      { task_id: p.id, status: 200, expires_at: expect.any(String), cancel_requested: false },
      { task_id: q.id, status: 200, expires_at: expect.any(String), cancel_requested: true },
      { task_id: p.id, status: 409, code: 'LEASE_STALE', message: expect.stringContaining('not the current lease') },
    ]);
    expect(Date.parse(beat.body.leases[0].expires_at)).toBeGreaterThan(Date.parse(p.lease.expires_at));
    expect(await api.task(wf.id, p.name)).toMatchObject({ state: 'RUNNING', progress: { step: 2 } });
    // Only a registered worker beats: an unknown id is 404, and nothing is extended.
    expect((await api.post('/v1/workers/00000000-0000-4000-8000-000000000000/heartbeat', { leases: [] })).status).toBe(
      404,
    );
    expect(
      (
        await api.post(`/v1/workers/${worker.id}/heartbeat`, {
          leases: Array.from({ length: 101 }, () => ({ task_id: p.id, lease_token: 'x' })),
        })
      ).status,
    ).toBe(400);
  });

  it('runs the on_error handler chosen by exit code; when it succeeds the failure is handled', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('migrate', {
            tags: [t],
            on_error: [
              { codes: ['TIMEOUT'], run: [task('never', { tags: [t] })] },
              {
                codes: ['3'],
                run: [
                  task('restore', { tags: [t], input: { from: 'backup' } }),
                  task('notify', { tags: [t], requires: ['restore'] }),
                ],
              },
            ],
          }),
          task('app', { tags: [t], requires: ['migrate'] }),
        ],
      }),
    );
    const migrate = await api.take([t]);
    const failed = await api.fail(migrate, { message: 'exit status 3' }, { exit_code: 3 });
    expect(failed.body).toMatchObject({ state: 'ERROR', handled: false, error: { code: '3' } });
    expect((await api.task(wf.id, 'app')).state).toBe('WAITING');
    expect((await api.get(`/v1/workflows/${wf.id}/tasks/never`)).status).toBe(404);

    const restore = await api.take([t]);
    expect(restore.name).toBe('restore');
    expect(restore.input).toMatchObject({
      from: 'backup',
      error: { code: '3' },
      failed_task: { name: 'migrate', exit_code: 3 },
    });
    await api.complete(restore);
    const notify = await api.take([t]);
    expect(notify.name).toBe('notify');
    await api.complete(notify);

    await waitFor('migrate to be handled', async () => (await api.task(wf.id, 'migrate')).handled === true);
    expect((await api.task(wf.id, 'migrate')).state).toBe('ERROR');
    const app = await api.take([t]);
    expect(app.name).toBe('app'); // dependents go on as if it had succeeded
    await api.complete(app);
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'])).state).toBe('SUCCESS');
  });

  it('treats a failing handler as an unhandled failure: on_failure "fail" ends the workflow at once', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('step', { tags: [t], on_error: [{ run: [task('fix', { tags: [t] })] }] }),
          task('other', { tags: [`${t}-other`] }),
          task('later', { tags: [t], requires: ['step'] }),
        ],
      }),
    );
    const other = await api.take([`${t}-other`]);
    await api.fail(await api.take([t]), { message: 'boom' });
    await api.fail(await api.take([t]), { message: 'fix failed too' });
    const ended = await waitForWorkflow(api, wf.id, ['ERROR']);
    expect(ended.finished_at).not.toBeNull();
    const later = await api.task(wf.id, 'later');
    expect(later).toMatchObject({ state: 'SKIPPED', error: { code: 'WORKFLOW_FAILED' } });
    // The task still running is asked to stop through its heartbeat.
    const hb = await api.post(`/v1/tasks/${other.id}/heartbeat`, { lease_token: other.lease.token });
    expect(hb.body.cancel_requested).toBe(true);
    expect((await api.task(wf.id, 'step')).handled).toBe(false);
  });

  it('with on_failure "continue" skips only what depends on the failure, then ends ERROR', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        on_failure: 'continue',
        tasks: [
          task('a', { tags: [t] }),
          task('b', { tags: [t], requires: ['a'] }),
          task('c', { tags: [t], requires: ['b'] }),
          task('d', { tags: [`${t}-d`] }),
        ],
      }),
    );
    await api.fail(await api.take([t]), { message: 'nope' });
    expect((await api.task(wf.id, 'b')).error.code).toBe('DEPENDENCY_FAILED');
    expect((await api.task(wf.id, 'c')).state).toBe('SKIPPED');
    expect((await api.workflow(wf.id)).state).toBe('RUNNING'); // d still to run
    await api.complete(await api.take([`${t}-d`]));
    expect((await waitForWorkflow(api, wf.id, ['ERROR', 'SUCCESS'])).state).toBe('ERROR');
  });

  it('treats a handler that can never run (skipped) as a failed one: the failure is unhandled and the workflow ends', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        on_failure: 'continue',
        tasks: [
          task('prep', { tags: [t] }),
          task('main', { tags: [t], on_error: [{ run: [task('fix', { tags: [t], requires: ['prep'] })] }] }),
        ],
      }),
    );
    const prep = await api.take([t]);
    expect(prep.name).toBe('prep');
    await api.fail(prep, { message: 'no disk', retryable: false });
    const main = await api.take([t]);
    await api.fail(main, { message: 'broken', retryable: false });
    expect(await api.task(wf.id, 'fix')).toMatchObject({ state: 'SKIPPED', error: { code: 'DEPENDENCY_FAILED' } });
    expect(await api.task(wf.id, 'main')).toMatchObject({ state: 'ERROR', handled: false });
    expect((await waitForWorkflow(api, wf.id, ['ERROR', 'SUCCESS'])).state).toBe('ERROR');
  });

  it('with on_failure "rollback" reverts what succeeded in reverse dependency order, on the same tags', async () => {
    const t = tag();
    const all = [t, 'app', 'db']; // a poll able to run every task here
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        on_failure: 'rollback',
        tasks: [
          task('db', { tags: [t, 'db'], revert: { type: 'shell', command: 'drop db' } }),
          task('schema', { tags: [t], requires: ['db'] }),
          task('app', { tags: [t, 'app'], requires: ['schema'], revert: { type: 'shell', command: 'undeploy' } }),
          task('smoke', { tags: [t], requires: ['app'] }),
        ],
      }),
    );
    for (const name of ['db', 'schema', 'app']) {
      const got = await api.take(all);
      expect(got.name).toBe(name);
      await api.complete(got, { done: name });
    }
    await api.fail(await api.take(all), { message: 'smoke test failed' });
    const r1 = await api.take(all);
    expect(r1).toMatchObject({
      name: 'app.revert',
      tags: [t, 'app'].sort(),
      action: { type: 'shell', command: 'undeploy' },
    });
    expect(r1.input).toMatchObject({ task: 'app', output: { done: 'app' } });
    expect(await api.poll(all)).toEqual([]); // db's revert waits for app's
    expect((await api.workflow(wf.id)).state).toBe('RUNNING');
    await api.complete(r1);
    const r2 = await api.take(all);
    expect(r2).toMatchObject({ name: 'db.revert', tags: [t, 'db'].sort() });
    await api.complete(r2);
    expect((await waitForWorkflow(api, wf.id, ['ERROR', 'SUCCESS'])).state).toBe('ERROR');
  });

  it('with on_failure "rollback", a failed revert skips only the reverts ordered after it', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        on_failure: 'rollback',
        tasks: [
          task('db', { tags: [t, 'db'], revert: { type: 'shell', command: 'drop db' } }),
          task('app', { tags: [t, 'app'], requires: ['db'], revert: { type: 'shell', command: 'undeploy' } }),
          task('cache', { tags: [t, 'cache'], revert: { type: 'shell', command: 'flush cache' } }),
          task('smoke', { tags: [t], requires: ['app', 'cache'] }),
        ],
      }),
    );
    for (const name of ['db', 'cache', 'app']) await api.complete(await api.take([t, name]));
    await api.fail(await api.take([t]), { message: 'smoke test failed' });
    const undeploy = await api.take([t, 'app']);
    expect(undeploy.name).toBe('app.revert');
    await api.fail(undeploy, { message: 'undeploy failed', retryable: false });
    // cache's revert is not ordered after app's: it still runs.
    const flush = await api.take([t, 'cache']);
    expect(flush.name).toBe('cache.revert');
    await api.complete(flush);
    // db's revert waits for app's, which failed: dropping the database under an app still
    // deployed is not what a rollback should do.
    expect(await api.task(wf.id, 'db.revert')).toMatchObject({
      state: 'SKIPPED',
      error: { code: 'DEPENDENCY_FAILED' },
    });
    expect(await api.task(wf.id, 'app.revert')).toMatchObject({
      state: 'ERROR',
      error: { message: 'undeploy failed' },
    });
    expect((await waitForWorkflow(api, wf.id, ['ERROR', 'SUCCESS'])).state).toBe('ERROR');
  });

  it('takes no new tasks into an open workflow that is rolling back', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({
        on_failure: 'rollback',
        tasks: [
          task('done', { tags: [t], revert: { type: 'noop' } }),
          task('busy', { tags: [`${t}-busy`] }),
          task('bad', { tags: [`${t}-bad`] }),
        ],
      }),
    );
    await api.complete(await api.take([t]));
    const busy = await api.take([`${t}-busy`]);
    await api.fail(await api.take([`${t}-bad`]), { message: 'bad failed' });
    expect((await api.workflow(wf.id)).state).toBe('RUNNING'); // the rollback waits for `busy`
    const late = await api.post(`/v1/workflows/${wf.id}/tasks`, task('late', { tags: [t] }));
    expect(late.status).toBe(409);
    expect(late.body.message).toContain('rolling back');
    await api.complete(busy);
    expect((await api.take([t])).name).toBe('done.revert');
  });

  it('counts an expired lease as a failed attempt: retried on a new lease, the late report refused', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({ sealed: true, tasks: [task('lost', { tags: [t], lease_s: 1, retry: { count: 1 } })] }),
    );
    const first = await api.take([t]);
    // No heartbeat: the lease runs out after 1 s.
    const second = await api.take([t], 10);
    expect(second.attempt).toBe(2);
    expect(second.error).toMatchObject({ code: 'LEASE_EXPIRED' });
    const late = await api.complete(first, { from: 'the dead worker' });
    expect(late.status).toBe(409);
    expect(late.body.message).toContain('not the current lease');
    expect((await api.post(`/v1/tasks/${first.id}/heartbeat`, { lease_token: first.lease.token })).status).toBe(409);
    const ok = await api.complete(second, { from: 'the live worker' });
    expect(ok.body).toMatchObject({ state: 'SUCCESS', output: { from: 'the live worker' } });
    expect((await api.complete(second, { from: 'the live worker' })).status).toBe(200);
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS'])).task_counts.SUCCESS).toBe(1);
  });

  it('keeps a lease alive while the worker heartbeats', async () => {
    const t = tag();
    const wf = await api.createWorkflow(workflow({ tasks: [task('long', { tags: [t], lease_s: 1 })] }));
    const got = await api.take([t]);
    const until = Date.now() + 2500;
    while (Date.now() < until) {
      const hb = await api.post(`/v1/tasks/${got.id}/heartbeat`, {
        lease_token: got.lease.token,
        progress: { pct: 50 },
      });
      expect(hb.status).toBe(200);
      expect(hb.body.cancel_requested).toBe(false);
      await new Promise((r) => setTimeout(r, 300)); // the worker's heartbeat period, not a wait for a result
    }
    const now = await api.task(wf.id, 'long');
    expect(now).toMatchObject({ state: 'RUNNING', attempt: 1, progress: { pct: 50 } });
    expect((await api.complete(got)).status).toBe(200);
  });

  it('fails an attempt that runs past timeout_s with TIMEOUT itself, once the worker had its time to stop it', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({ sealed: true, tasks: [task('hang', { tags: [t], timeout_s: 1, lease_s: 30 })] }),
    );
    const got = await api.take([t]); // a worker that never stops it nor reports
    const failed = await waitFor(
      'the attempt to time out',
      async () => {
        const tk = await api.task(wf.id, 'hang');
        return tk.state === 'ERROR' ? tk : undefined;
      },
      30_000,
    );
    expect(failed.error).toMatchObject({ code: 'TIMEOUT', message: 'attempt 1 ran longer than timeout_s=1' });
    // timeout_s, then the worker's time to stop the attempt and report it (TIMEOUT_GRACE_MS).
    expect(Date.parse(failed.finished_at) - Date.parse(failed.started_at)).toBeGreaterThanOrEqual(1000 + 15_000);
    expect((await api.complete(got)).status).toBe(409);
  });

  it('bounds reports: output over 256 KiB is refused, logs keep their last 64 KiB', async () => {
    const t = tag();
    await api.createWorkflow(workflow({ tasks: [task('chatty', { tags: [t] })] }));
    const got = await api.take([t]);
    const big = await api.complete(got, { blob: 'x'.repeat(300 * 1024) });
    expect(big.status).toBe(413);
    expect(big.body.message).toContain('output');
    const log = 'a'.repeat(100 * 1024) + 'THE END';
    const ok = await api.complete(got, { small: true }, { stdout: log, stderr: 'warn', exit_code: 0 });
    expect(ok.status).toBe(200);
    expect(Buffer.byteLength(ok.body.stdout)).toBe(64 * 1024);
    expect(ok.body.stdout.endsWith('THE END')).toBe(true);
    expect(ok.body).toMatchObject({ stderr: 'warn', exit_code: 0, output: { small: true } });
  });
});
