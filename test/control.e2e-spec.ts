import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Api, task, waitFor, waitForWorkflow, workflow } from './support/harness.js';

/** What users do to running work: pause, resume, cancel, rerun, change, delete, and the shortcut. */
describe('controlling workflows and tasks', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    await api.stop();
  });
  const tag = () => `c-${Math.random().toString(36).slice(2, 10)}`;

  it('pauses dispatch and resumes it', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({ sealed: true, tasks: [task('p1', { tags: [t] }), task('p2', { tags: [t], requires: ['p1'] })] }),
    );
    expect((await api.post(`/v1/workflows/${wf.id}/pause`)).body.state).toBe('PAUSED');
    expect((await api.post(`/v1/workflows/${wf.id}/pause`)).status).toBe(200); // idempotent
    // Queued work is in Redis by the time an answer is sent: a poll now would get p1 if it were offered.
    expect((await api.task(wf.id, 'p1')).state).toBe('READY');
    expect(await api.poll([t], { wait_s: 0 })).toEqual([]);
    expect((await api.post(`/v1/workflows/${wf.id}/resume`)).body.state).toBe('RUNNING');
    const p1 = await api.take([t]);
    expect(p1.name).toBe('p1');
    // A running task finishes while paused; its dependent becomes READY but is not offered.
    await api.post(`/v1/workflows/${wf.id}/pause`);
    await api.complete(p1);
    expect((await api.task(wf.id, 'p2')).state).toBe('READY');
    expect(await api.poll([t], { wait_s: 0 })).toEqual([]);
    await api.post(`/v1/workflows/${wf.id}/resume`);
    await api.complete(await api.take([t]));
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS'])).state).toBe('SUCCESS');
    expect((await api.post(`/v1/workflows/${wf.id}/pause`)).status).toBe(409);
  });

  it('cancels a workflow: waiting work at once, running work through its worker', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({ tasks: [task('run', { tags: [t] }), task('wait', { tags: [t], requires: ['run'] })] }),
    );
    const running = await api.take([t]);
    const r = await api.post(`/v1/workflows/${wf.id}/cancel`);
    expect(r.body.state).toBe('CANCELLED');
    expect((await api.task(wf.id, 'wait')).state).toBe('CANCELLED');
    const hb = await api.post(`/v1/tasks/${running.id}/heartbeat`, { lease_token: running.lease.token });
    expect(hb.body.cancel_requested).toBe(true);
    const reported = await api.fail(running, { message: 'killed on request', code: 'CANCELLED' });
    expect(reported.body.state).toBe('CANCELLED');
    expect((await api.post(`/v1/workflows/${wf.id}/cancel`)).status).toBe(200);
    expect((await api.post(`/v1/workflows/${wf.id}/resume`)).status).toBe(409);
  });

  it('cancels a waiting task; what depends on it is skipped, and the workflow still succeeds', async () => {
    const t = tag();
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
    const b = await api.task(wf.id, 'b');
    expect((await api.post(`/v1/tasks/${b.id}/cancel`)).body.state).toBe('CANCELLED');
    expect((await api.task(wf.id, 'c')).error.code).toBe('DEPENDENCY_CANCELLED');
    expect((await api.post(`/v1/tasks/${b.id}/cancel`)).status).toBe(409);
    await api.complete(await api.take([t]));
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'])).state).toBe('SUCCESS');
  });

  it('cancels a running task through its heartbeat', async () => {
    const t = tag();
    const wf = await api.createWorkflow(workflow({ tasks: [task('sleep', { tags: [t] })] }));
    const got = await api.take([t]);
    expect((await api.post(`/v1/tasks/${got.id}/cancel`)).body).toMatchObject({
      state: 'RUNNING',
      cancel_requested: true,
    });
    expect(
      (await api.post(`/v1/tasks/${got.id}/heartbeat`, { lease_token: got.lease.token })).body.cancel_requested,
    ).toBe(true);
    expect((await api.fail(got, { message: 'stopped', code: 'CANCELLED' })).body.state).toBe('CANCELLED');
    expect((await api.task(wf.id, 'sleep')).state).toBe('CANCELLED');
  });

  it('reruns an ERROR task of an unfinished workflow as a new attempt', async () => {
    const t = tag();
    const wf = await api.createWorkflow(workflow({ on_failure: 'continue', tasks: [task('once', { tags: [t] })] }));
    const first = await api.take([t]);
    await api.fail(first, { message: 'oops' });
    const rerun = await api.post(`/v1/tasks/${first.id}/rerun`);
    expect(rerun.body).toMatchObject({ state: 'READY', attempt: 2, error: null });
    const second = await api.take([t]);
    expect(second.attempt).toBe(2);
    await api.complete(second);
    expect((await api.post(`/v1/tasks/${first.id}/rerun`)).status).toBe(409);
    await api.post(`/v1/workflows/${wf.id}/seal`);
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'])).state).toBe('SUCCESS');
  });

  it('refuses a task that would close a dependency cycle once a rerun brings a skipped task back', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({
        on_failure: 'continue',
        tasks: [task('a', { tags: [t] }), task('b', { tags: [t], requires: ['a'], requires_tags: [`${t}-n`] })],
      }),
    );
    await api.fail(await api.take([t]), { message: 'a failed' });
    expect(await api.task(wf.id, 'b')).toMatchObject({ state: 'SKIPPED', error: { code: 'DEPENDENCY_FAILED' } });
    // n requires b, which selects n's tag: the rerun of a would bring b back waiting for n.
    const add = await api.post(`/v1/workflows/${wf.id}/tasks`, task('n', { tags: [`${t}-n`], requires: ['b'] }));
    expect(add.status).toBe(422);
    expect(add.body.message).toBe(`dependency cycle: n -> b -> tag:${t}-n -> n`);
    expect((await api.get(`/v1/workflows/${wf.id}/tasks/n`)).status).toBe(404); // nothing written
    await api.post(`/v1/tasks/${(await api.task(wf.id, 'a')).id}/rerun`);
    const a = await api.take([t]);
    expect(a).toMatchObject({ name: 'a', attempt: 2 });
    await api.complete(a);
    await api.post(`/v1/workflows/${wf.id}/seal`); // b's tag selector has no member: it waits for the seal
    const b = await api.take([t]);
    expect(b.name).toBe('b');
    await api.complete(b);
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'])).state).toBe('SUCCESS');
  });

  it('brings back, on a rerun, the tasks that were skipped because the task failed', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({
        on_failure: 'continue',
        tasks: [
          task('build', { tags: [t] }),
          task('deploy', { tags: [t], requires: ['build'] }),
          task('notify', { tags: [t], requires: ['deploy'] }),
          task('audit', { tags: [`${t}-audit`], requires_tags: [`${t}-deployers`] }),
          task('smoke', { tags: [t, `${t}-deployers`], requires: ['build'] }),
        ],
      }),
    );
    await api.fail(await api.take([t]), { message: 'compiler crashed' });
    for (const name of ['deploy', 'notify', 'smoke', 'audit']) {
      expect(await api.task(wf.id, name)).toMatchObject({ state: 'SKIPPED', error: { code: 'DEPENDENCY_FAILED' } });
    }
    const rerun = await api.post(`/v1/tasks/${(await api.task(wf.id, 'build')).id}/rerun`);
    expect(rerun.body).toMatchObject({ state: 'READY', attempt: 2 });
    for (const name of ['deploy', 'notify', 'smoke', 'audit']) {
      expect(await api.task(wf.id, name)).toMatchObject({ state: 'WAITING', error: null, finished_at: null });
    }
    await api.complete(await api.take([t]));
    const ran: string[] = [];
    for (let i = 0; i < 3; i++) {
      const got = await api.take([t, `${t}-deployers`]); // smoke carries both
      ran.push(got.name);
      await api.complete(got);
    }
    expect(ran.sort()).toEqual(['deploy', 'notify', 'smoke']);
    await api.complete(await api.take([`${t}-audit`]));
    await api.post(`/v1/workflows/${wf.id}/seal`);
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'])).state).toBe('SUCCESS');
    const events = (await api.get(`/v1/tasks/${(await api.task(wf.id, 'notify')).id}/events`)).body.map(
      (e: any) => `${e.from ?? '-'}>${e.to}`,
    );
    expect(events).toEqual([
      '->WAITING',
      'WAITING>SKIPPED',
      'SKIPPED>WAITING',
      'WAITING>READY',
      'READY>RUNNING',
      'RUNNING>SUCCESS',
    ]);
  });

  it('changes a task before it runs, and refuses once it runs', async () => {
    const t = tag();
    const wf = await api.createWorkflow(
      workflow({ tasks: [task('movable', { tags: [`${t}-old`], input: { v: 1 } })] }),
    );
    const id = (await api.task(wf.id, 'movable')).id;
    const p = await api.patch(`/v1/tasks/${id}`, { tags: [`${t}-new`], input: { v: 2 } });
    expect(p.status).toBe(200);
    expect(p.body).toMatchObject({ state: 'READY', tags: [`${t}-new`], input: { v: 2 } });
    expect(await api.poll([`${t}-old`], { wait_s: 0 })).toEqual([]);
    const got = await api.take([`${t}-new`]);
    expect(got.input).toEqual({ v: 2 });
    expect((await api.patch(`/v1/tasks/${id}`, { input: { v: 3 } })).status).toBe(409);
    expect((await api.patch(`/v1/tasks/${id}`, { name: 'renamed' })).status).toBe(400);
  });

  it('refuses a change that would close a dependency cycle', async () => {
    const wf = await api.createWorkflow(workflow({ tasks: [task('a', { requires_tags: ['x'] }), task('b')] }));
    const b = await api.task(wf.id, 'b');
    const r = await api.patch(`/v1/tasks/${b.id}`, { tags: ['x'], requires: ['a'] });
    expect(r.status).toBe(422);
    expect(r.body.message).toContain('dependency cycle');
    expect((await api.task(wf.id, 'b')).tags).toEqual(['never-polled']);
  });

  it('applies the data rules to a change: a new data reference makes the task wait, a data cycle is refused', async () => {
    const t = `pd-${Math.random().toString(36).slice(2, 10)}`;
    const wf = await api.createWorkflow(
      workflow({ tasks: [task('reader', { tags: [t] }), task('writer', { tags: [`${t}-w`], produces: ['cfg'] })] }),
    );
    const reader = await api.task(wf.id, 'reader');
    const p = await api.patch(`/v1/tasks/${reader.id}`, { input: { cfg: '{{ data.cfg }}' } });
    expect(p.body.state).toBe('WAITING');
    const writer = await api.task(wf.id, 'writer');
    const cycle = await api.patch(`/v1/tasks/${writer.id}`, { input: { x: '{{ tasks.reader.output }}' } });
    expect(cycle.status).toBe(422);
    expect(cycle.body.message).toContain('data:cfg');
    expect((await api.task(wf.id, 'writer')).produces).toEqual(['cfg']); // a change keeps what it does not name
    await api.request('PUT', `/v1/workflows/${wf.id}/data/cfg`, { value: 7 });
    expect((await api.take([t])).input).toEqual({ cfg: 7 });
  });

  it('deletes a task before it runs unless another requires it by name', async () => {
    const wf = await api.createWorkflow(
      workflow({
        tasks: [
          task('base'),
          task('top', { requires: ['base'] }),
          task('gate', { requires_tags: ['opt'] }),
          task('optional', { tags: ['opt'], requires: ['top'] }),
        ],
      }),
    );
    const base = await api.task(wf.id, 'base');
    const refused = await api.del(`/v1/tasks/${base.id}`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toContain('required by top');
    const optional = await api.task(wf.id, 'optional');
    expect((await api.del(`/v1/tasks/${optional.id}`)).status).toBe(204);
    await api.post(`/v1/workflows/${wf.id}/seal`);
    // gate selected only `optional`: with it gone and the workflow sealed, gate runs.
    await waitFor('gate to be READY', async () => (await api.task(wf.id, 'gate')).state === 'READY');
  });

  it('hands one task over in one call and waits for its result', async () => {
    const t = tag();
    const created = await api.post('/v1/tasks', {
      name: 'resize',
      tags: [t],
      action: { type: 'shell', command: 'resize2fs /dev/sdb' },
      input: { size: 10 },
      workflow_name: 'heat-stack-1',
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'resize', state: 'READY', workflow_id: expect.any(String) });
    const wf = await api.workflow(created.body.workflow_id);
    expect(wf).toMatchObject({ name: 'heat-stack-1', sealed: true });

    const waiting = api.get(`/v1/tasks/${created.body.id}?wait_s=20`);
    const got = await api.take([t]);
    await api.complete(got, { resized: true });
    const result = await waiting;
    expect(result.body).toMatchObject({ state: 'SUCCESS', output: { resized: true } });
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS'])).state).toBe('SUCCESS');
  });

  it('returns the task as it is when the wait ends first', async () => {
    const created = await api.post('/v1/tasks', { tags: [tag()], action: { type: 'noop' } });
    const started = Date.now();
    const r = await api.get(`/v1/tasks/${created.body.id}?wait_s=1`);
    expect(r.body.state).toBe('READY');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect((await api.get(`/v1/tasks/${created.body.id}?wait_s=301`)).status).toBe(400);
  });
});
