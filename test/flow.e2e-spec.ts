import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Api, task, waitFor, workflow } from './support/harness.js';

const uniq = () => Math.random().toString(36).slice(2, 10);
const at = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString();

/** Flow control: when a task may start and which goes first, whatever its dependencies say. */
let api: Api;
beforeAll(async () => {
  api = await Api.start();
});
afterAll(async () => {
  await api?.stop();
});

describe('not_before', () => {

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
    if (Date.now() < Date.parse(notBefore) - 500) expect((await api.task(wf.id, 'restarted')).state).toBe('WAITING');
    const [leased] = await api.poll([tag], { wait_s: 20 });
    expect(leased).toBeDefined();
    expect(Date.parse((await api.get(`/v1/tasks/${leased.id}`)).body.started_at)).toBeGreaterThanOrEqual(Date.parse(notBefore));
  });

  it('can be moved earlier, later, or taken away before the task runs', async () => {
    const tag = `nb-${uniq()}`;
    const wf = await api.createWorkflow(workflow({
      tasks: [task('earlier', { tags: [tag], not_before: at(3_600_000) }), task('later', { tags: [tag], not_before: at(1000) }), task('cleared', { tags: [tag], not_before: at(3_600_000) })],
    }));
    const [earlier, later, cleared] = await Promise.all(['earlier', 'later', 'cleared'].map((n) => api.task(wf.id, n)));
    const movedTo = at(4000);
    expect((await api.request('PATCH', `/v1/tasks/${later.id}`, { not_before: movedTo })).status).toBe(200);
    expect((await api.request('PATCH', `/v1/tasks/${earlier.id}`, { not_before: at(-1000) })).status).toBe(200);
    expect((await api.request('PATCH', `/v1/tasks/${cleared.id}`, { not_before: null })).status).toBe(200);
    const first = (await api.poll([tag], { wait_s: 5, max_tasks: 5 })).map((t) => t.id).sort();
    expect(first).toEqual([earlier.id, cleared.id].sort());
    // The one moved later is not handed out at its old time: a poll waiting past it gets nothing.
    expect(await api.poll([tag], { wait_s: 2 })).toEqual([]);
    expect((await api.task(wf.id, 'later')).state).toBe('WAITING');
    const [last] = await api.poll([tag], { wait_s: 10 });
    expect(last?.id).toBe(later.id);
    expect(Date.parse((await api.get(`/v1/tasks/${later.id}`)).body.started_at)).toBeGreaterThanOrEqual(Date.parse(movedTo));
  });

  it('holds the task of a sealed workflow (the one-task shortcut) without calling it stuck', async () => {
    const tag = `nb-${uniq()}`;
    const notBefore = at(2000);
    const r = await api.post('/v1/tasks', { tags: [tag], action: { type: 'noop' }, not_before: notBefore });
    expect(r.status).toBe(201);
    // Sealed, nothing ready or running: still not a deadlock while the time is ahead.
    expect(await api.poll([tag], { wait_s: 1 })).toEqual([]);
    expect((await api.get(`/v1/tasks/${r.body.id}`)).body).toMatchObject({ state: 'WAITING', error: null });
    const [leased] = await api.poll([tag], { wait_s: 10 });
    expect(leased?.id).toBe(r.body.id);
  });

  it('refuses a time without a zone, or not a time, naming the field, and creates nothing', async () => {
    for (const bad of ['tomorrow', '2026-12-01T10:00:00', '2026-13-01T10:00:00Z', '2026-02-30T10:00:00Z', '2026-12-01T24:00:00Z', 1764583200000]) {
      const name = `bad-${uniq()}`;
      const r = await api.post('/v1/workflows', workflow({ name, tasks: [task('x', { not_before: bad })] }));
      expect({ bad, status: r.status }).toEqual({ bad, status: 400 });
      expect(JSON.stringify(r.body)).toContain('tasks.0.not_before');
      expect((await api.get(`/v1/workflows?name=${name}`)).body.items).toEqual([]);
    }
  });
});

describe('priority', () => {

  const names = async (wfId: string, ids: string[]) => {
    const tasks = (await api.get(`/v1/workflows/${wfId}/tasks?limit=500`)).body.items as { id: string; name: string }[];
    return ids.map((id) => tasks.find((t) => t.id === id)?.name);
  };

  it('hands out the highest first among the ready tasks of a tag set, the oldest first at equal priority', async () => {
    const tag = `pr-${uniq()}`;
    const wf = await api.createWorkflow(workflow({
      tasks: [
        task('low', { tags: [tag], priority: -5 }),
        task('plain-1', { tags: [tag] }),
        task('high', { tags: [tag], priority: 50 }),
        task('plain-2', { tags: [tag], priority: 0 }),
        task('urgent', { tags: [tag], priority: 100 }),
      ],
    }));
    expect((await api.task(wf.id, 'urgent')).priority).toBe(100);
    const order: string[] = [];
    for (let i = 0; i < 5; i++) order.push(...(await api.poll([tag], { wait_s: 2, max_tasks: 1 })).map((t) => t.id));
    expect(await names(wf.id, order)).toEqual(['urgent', 'high', 'plain-1', 'plain-2', 'low']);
  });

  it('across the tag sets a poll fits, takes the highest first', async () => {
    const [x, y] = [`prx-${uniq()}`, `pry-${uniq()}`];
    const wf = await api.createWorkflow(workflow({ tasks: [task('x-plain', { tags: [x] }), task('y-high', { tags: [y], priority: 10 }), task('x-low', { tags: [x], priority: -10 })] }));
    const order: string[] = [];
    for (let i = 0; i < 3; i++) order.push(...(await api.poll([x, y], { wait_s: 2, max_tasks: 1 })).map((t) => t.id));
    expect(await names(wf.id, order)).toEqual(['y-high', 'x-plain', 'x-low']);
  });

  it('a poll for several tasks takes them in priority order across its tag sets, not one tag set first', async () => {
    const [x, y] = [`prx-${uniq()}`, `pry-${uniq()}`];
    const wf = await api.createWorkflow(workflow({
      tasks: [task('x-top', { tags: [x], priority: 60 }), task('x-bottom', { tags: [x], priority: -100 }), task('y-mid', { tags: [y], priority: 50 }), task('y-low', { tags: [y], priority: -50 })],
    }));
    const first = (await api.poll([x, y], { wait_s: 2, max_tasks: 3 })).map((t) => t.id);
    expect((await names(wf.id, first)).sort()).toEqual(['x-top', 'y-low', 'y-mid']);
    const rest = (await api.poll([x, y], { wait_s: 2, max_tasks: 3 })).map((t) => t.id);
    expect(await names(wf.id, rest)).toEqual(['x-bottom']);
  });

  it('gives a parked poll the highest of the tasks a report releases', async () => {
    const tag = `prh-${uniq()}`;
    const wf = await api.createWorkflow(workflow({
      tasks: [task('root', { tags: [tag] }), task('after-low', { tags: [tag], requires: ['root'], priority: -1 }), task('after-high', { tags: [tag], requires: ['root'], priority: 1 })],
    }));
    const root = await api.take([tag]);
    const parked = api.poll([tag], { wait_s: 10, max_tasks: 1 });
    await api.pollsParked(1);
    expect(await api.complete(root)).toMatchObject({ status: 200 });
    const [got] = await parked;
    expect(await names(wf.id, [got.id])).toEqual(['after-high']);
  });

  it('refuses a priority out of -100..100 or not an integer, naming the field', async () => {
    for (const bad of [101, -101, 1.5, '5']) {
      const r = await api.post('/v1/workflows', workflow({ name: `bad-${uniq()}`, tasks: [task('x', { priority: bad })] }));
      expect({ bad, status: r.status }).toEqual({ bad, status: 400 });
      expect(JSON.stringify(r.body)).toContain('tasks.0.priority');
    }
  });
});
