import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Api, task, waitFor, workflow } from './support/harness.js';

const uniq = () => Math.random().toString(36).slice(2, 10);
const at = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString();

/** Flow control: when a task may start, whatever its dependencies say. */
describe('not_before', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    await api?.stop();
  });

  it('holds a task whose dependencies are met until its time, then hands it out within a second', async () => {
    const tag = `nb-${uniq()}`;
    const notBefore = at(2500);
    const wf = await api.createWorkflow(workflow({ tasks: [task('later', { tags: [tag], not_before: notBefore })] }));
    const held = await api.task(wf.id, 'later');
    expect(held).toMatchObject({ state: 'WAITING', not_before: notBefore });
    expect(await api.poll([tag], { wait_s: 0 })).toEqual([]);
    // A poll parked before the time gets it once the time has come.
    const [leased] = await api.poll([tag], { wait_s: 20 });
    expect(leased?.id).toBe(held.id);
    const t = (await api.get(`/v1/tasks/${held.id}`)).body;
    const late = Date.parse(t.started_at) - Date.parse(notBefore);
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(1000);
    const events = (await api.get(`/v1/tasks/${held.id}/events`)).body.map((e: any) => `${e.from ?? '-'}>${e.to}`);
    expect(events).toEqual(['->WAITING', 'WAITING>READY', 'READY>RUNNING']);
  });

  it('waits for both: a time already past does not hold a task, a time ahead holds one whose dependency is done', async () => {
    const tag = `nb-${uniq()}`;
    const wf = await api.createWorkflow(workflow({
      tasks: [
        task('first', { tags: [tag] }),
        task('past', { tags: [tag], requires: ['first'], not_before: at(-60_000) }),
        task('ahead', { tags: [tag], requires: ['first'], not_before: at(3000) }),
      ],
    }));
    expect(await api.complete(await api.take([tag]))).toMatchObject({ status: 200 });
    const [next] = await api.poll([tag], { wait_s: 5 });
    expect(next?.id).toBe((await api.task(wf.id, 'past')).id);
    expect((await api.task(wf.id, 'ahead')).state).toBe('WAITING');
    await waitFor('ahead to be READY after its time', async () => (await api.task(wf.id, 'ahead')).state === 'READY', 10_000);
  });

  it('is kept across an API restart', async () => {
    const tag = `nb-${uniq()}`;
    const notBefore = at(3000);
    const wf = await api.createWorkflow(workflow({ tasks: [task('restarted', { tags: [tag], not_before: notBefore })] }));
    expect((await api.task(wf.id, 'restarted')).state).toBe('WAITING');
    await api.stop();
    api = await Api.start({ databaseUrl: api.databaseUrl, prefix: api.prefix });
    const [leased] = await api.poll([tag], { wait_s: 20 });
    expect(leased).toBeDefined();
    expect(Date.parse((await api.get(`/v1/tasks/${leased.id}`)).body.started_at)).toBeGreaterThanOrEqual(Date.parse(notBefore));
  });

  it('can be moved earlier before the task runs', async () => {
    const tag = `nb-${uniq()}`;
    const wf = await api.createWorkflow(workflow({ tasks: [task('moved', { tags: [tag], not_before: at(3_600_000) })] }));
    const t = await api.task(wf.id, 'moved');
    expect((await api.request('PATCH', `/v1/tasks/${t.id}`, { not_before: at(-1000) })).status).toBe(200);
    const [leased] = await api.poll([tag], { wait_s: 5 });
    expect(leased?.id).toBe(t.id);
  });

  it('refuses a time without a zone, or not a time, naming the field, and creates nothing', async () => {
    for (const bad of ['tomorrow', '2026-12-01T10:00:00', '2026-13-01T10:00:00Z', 1764583200000]) {
      const name = `bad-${uniq()}`;
      const r = await api.post('/v1/workflows', workflow({ name, tasks: [task('x', { not_before: bad })] }));
      expect({ bad, status: r.status }).toEqual({ bad, status: 400 });
      expect(JSON.stringify(r.body)).toContain('tasks.0.not_before');
      expect((await api.get(`/v1/workflows?name=${name}`)).body.items).toEqual([]);
    }
  });
});
