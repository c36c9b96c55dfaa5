import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Api, task, workflow } from './support/harness.js';
import { dbSnapshot } from './support/faults.js';

/** The REST surface for workflows and tasks, and what bad input gets. */
describe('workflows and tasks over REST', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    await api.stop();
  });

  it('creates a workflow with inline tasks and reports task counts', async () => {
    const r = await api.post(
      '/v1/workflows',
      workflow({
        name: 'deploy',
        description: 'd',
        tags: ['prod'],
        input: { v: 1 },
        tasks: [task('a'), task('b', { requires: ['a'] }), task('c', { requires: ['a'] })],
      }),
    );
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      name: 'deploy',
      state: 'RUNNING',
      sealed: false,
      on_failure: 'fail',
      tags: ['prod'],
      input: { v: 1 },
    });
    expect(r.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.body.task_counts).toMatchObject({ READY: 1, WAITING: 2, RUNNING: 0 });
    expect(new Date(r.body.created_at).toISOString()).toBe(r.body.created_at);

    const b = await api.get(`/v1/workflows/${r.body.id}/tasks/b`);
    expect(b.status).toBe(200);
    expect(b.body).toMatchObject({
      name: 'b',
      state: 'WAITING',
      requires: ['a'],
      attempt: 1,
      lease_s: 30,
      retry: { count: 0 },
    });
    const byId = await api.get(`/v1/workflows/${r.body.id}/tasks/${b.body.id}`);
    expect(byId.body.name).toBe('b');
  });

  it('lists workflows with filters and cursor pagination', async () => {
    const tag = `t-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await api.createWorkflow(workflow({ name: `page-${i}`, tags: [tag] }))).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: { status: number; body: any } = await api.get(
        `/v1/workflows?tag=${tag}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...r.body.items.map((w: any) => w.id));
      cursor = r.body.next_cursor;
    } while (cursor);
    expect(seen.sort()).toEqual([...ids].sort());
    const byName = await api.get('/v1/workflows?name=page-3');
    expect(byName.body.items.map((w: any) => w.name)).toEqual(['page-3']);
    const running = await api.get(`/v1/workflows?state=SUCCESS&tag=${tag}`);
    expect(running.body.items).toEqual([]);
    expect((await api.get('/v1/workflows?cursor=garbage')).status).toBe(400);
    expect((await api.get('/v1/workflows?limit=501')).status).toBe(400);
    expect((await api.get('/v1/workflows?state=NOPE')).status).toBe(400);
  });

  it("lists a workflow's tasks by state and tag", async () => {
    const wf = await api.createWorkflow(
      workflow({
        tasks: [
          task('x', { tags: ['web'] }),
          task('y', { tags: ['db'] }),
          task('z', { tags: ['web'], requires: ['y'] }),
        ],
      }),
    );
    const web = await api.get(`/v1/workflows/${wf.id}/tasks?tag=web`);
    expect(web.body.items.map((t: any) => t.name)).toEqual(['x', 'z']);
    const waiting = await api.get(`/v1/workflows/${wf.id}/tasks?state=WAITING`);
    expect(waiting.body.items.map((t: any) => t.name)).toEqual(['z']);
  });

  it('adds one task or a batch atomically to an open workflow, and none to a sealed one', async () => {
    const wf = await api.createWorkflow(workflow());
    const one = await api.post(`/v1/workflows/${wf.id}/tasks`, task('one'));
    expect(one.status).toBe(201);
    expect(one.body).toMatchObject({ name: 'one', state: 'READY' });
    const batch = await api.post(`/v1/workflows/${wf.id}/tasks`, {
      tasks: [task('two', { requires: ['one'] }), task('three', { requires: ['two'] })],
    });
    expect(batch.status).toBe(201);
    expect(batch.body.tasks.map((t: any) => t.state)).toEqual(['WAITING', 'WAITING']);

    // One bad task in a batch: nothing of the batch is added.
    const bad = await api.post(`/v1/workflows/${wf.id}/tasks`, {
      tasks: [task('four'), task('five', { requires: ['nope'] })],
    });
    expect(bad.status).toBe(422);
    expect(bad.body.message).toContain('unknown task nope');
    expect((await api.get(`/v1/workflows/${wf.id}/tasks/four`)).status).toBe(404);

    expect((await api.post(`/v1/workflows/${wf.id}/seal`)).body.sealed).toBe(true);
    const late = await api.post(`/v1/workflows/${wf.id}/tasks`, task('late'));
    expect(late.status).toBe(409);
    expect(late.body.message).toContain('sealed');
  });

  it('generates a name when none is given', async () => {
    const wf = await api.createWorkflow(workflow({ tasks: [{ action: { type: 'shell', command: 'true' } }] }));
    const list = await api.get(`/v1/workflows/${wf.id}/tasks`);
    expect(list.body.items[0].name).toMatch(/^shell-[0-9a-f]{8}$/);
  });

  it('refuses bad input with a 4xx naming every offending field, and changes nothing', async () => {
    const before = (await api.get('/v1/workflows?limit=500')).body.items.length;
    const r = await api.post('/v1/workflows', {
      name: 'bad name!',
      tags: Array.from({ length: 33 }, (_, i) => `t${i}`),
      on_failure: 'explode',
      tasks: [{ action: {} }, { action: { type: 'x' }, tags: ['no spaces allowed'], lease_s: 0, retry: { count: -1 } }],
      unknown_field: true,
    });
    expect(r.status).toBe(400);
    const fields = r.body.details.map((d: any) => d.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'name',
        'tags',
        'on_failure',
        'tasks.0.action',
        'tasks.1.tags',
        'tasks.1.lease_s',
        'tasks.1.retry.count',
        'unknown_field',
      ]),
    );
    expect(r.body).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'VALIDATION_FAILED' });
    expect(typeof r.body.message).toBe('string');
    expect((await api.get('/v1/workflows?limit=500')).body.items.length).toBe(before);
  });

  it('refuses a list where one object belongs, naming the field, and changes nothing', async () => {
    const wf = await api.createWorkflow(workflow());
    const workflows = (await api.get('/v1/workflows?limit=500')).body.items.length;
    const noop = { action: { type: 'noop' } };
    const refused: [string, string, object][] = [
      [`/v1/workflows/${wf.id}/tasks`, 'retry', { ...noop, retry: [{ count: 2 }] }],
      [`/v1/workflows/${wf.id}/tasks`, 'callback', { ...noop, callback: [{ url: 'https://example.com/' }] }],
      [`/v1/workflows/${wf.id}/tasks`, 'on_error', { ...noop, on_error: [[{ run: [noop] }]] }],
      [`/v1/workflows/${wf.id}/tasks`, 'tasks', { tasks: [[noop]] }],
      ['/v1/workflows', 'tasks', workflow({ tasks: [[noop]] })],
      ['/v1/workflows', 'callback', workflow({ callback: [] })],
      ['/v1/tasks/report', 'reports', { reports: [[]] }],
    ];
    for (const [path, field, body] of refused) {
      const r = await api.post(path, body);
      expect({ path, status: r.status, fields: r.body.details?.map((d: any) => d.field) }).toEqual({
        path,
        status: 400,
        fields: [field],
      });
    }
    // Named once, by the type it should be.
    const retry = await api.post(`/v1/workflows/${wf.id}/tasks`, { ...noop, retry: 'x' });
    expect(retry.body.details).toEqual([{ field: 'retry', errors: ['retry must be an object'] }]);
    const onError = await api.post(`/v1/workflows/${wf.id}/tasks`, { ...noop, on_error: 'x' });
    expect(onError.body.details).toEqual([{ field: 'on_error', errors: ['on_error must be an array'] }]);
    expect((await api.get(`/v1/workflows/${wf.id}/tasks`)).body.items).toEqual([]);
    expect((await api.get('/v1/workflows?limit=500')).body.items.length).toBe(workflows);
  });

  it('drops the keys __proto__, constructor and prototype from a body, wherever they are', async () => {
    // Once a 500: class-transformer took a "constructor" key inside a task's input for its class.
    const wf = await api.createWorkflow(workflow());
    const r = await api.request(
      'POST',
      `/v1/workflows/${wf.id}/tasks`,
      '{"name": "t", "action": {"type": "noop", "constructor": "x"},' +
        ' "input": {"k": 1, "constructor": "x", "prototype": {}, "__proto__": {"polluted": 1}, "deep": [{"constructor": 1, "v": 2}]}}',
    );
    expect(r.status).toBe(201);
    expect(r.body.action).toEqual({ type: 'noop' });
    expect(r.body.input).toEqual({ k: 1, deep: [{ v: 2 }] });
    const batch = await api.post(`/v1/workflows/${wf.id}/tasks`, {
      tasks: [{ name: 'u', action: { type: 'noop' }, input: { constructor: { a: 1 }, keep: true } }],
    });
    expect(batch.status).toBe(201);
    expect(batch.body.tasks[0].input).toEqual({ keep: true });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('answers 422 for a duplicate name, an unknown dependency and a cycle, naming the offender', async () => {
    const dup = await api.post('/v1/workflows', workflow({ tasks: [task('a'), task('a')] }));
    expect(dup.status).toBe(422);
    expect(dup.body.message).toContain('duplicate task name a');
    const unknown = await api.post('/v1/workflows', workflow({ tasks: [task('a', { requires: ['ghost'] })] }));
    expect(unknown.status).toBe(422);
    expect(unknown.body.message).toBe('task a requires unknown task ghost');
    const cycle = await api.post(
      '/v1/workflows',
      workflow({
        tasks: [task('a', { requires: ['c'] }), task('b', { requires: ['a'] }), task('c', { requires: ['b'] })],
      }),
    );
    expect(cycle.status).toBe(422);
    expect(cycle.body.message).toMatch(/^dependency cycle: (a -> c -> b -> a|b -> a -> c -> b|c -> b -> a -> c)$/);
    const tagCycle = await api.post(
      '/v1/workflows',
      workflow({ tasks: [task('lb', { requires_tags: ['web'] }), task('web1', { tags: ['web'], requires: ['lb'] })] }),
    );
    expect(tagCycle.status).toBe(422);
    expect(tagCycle.body.message).toContain('tag:web');
  });

  it('refuses a cycle closed by a task added later', async () => {
    const wf = await api.createWorkflow(workflow({ tasks: [task('gate', { requires_tags: ['late'] })] }));
    const r = await api.post(`/v1/workflows/${wf.id}/tasks`, task('joiner', { tags: ['late'], requires: ['gate'] }));
    expect(r.status).toBe(422);
    expect(r.body.message).toBe('dependency cycle: joiner -> gate -> tag:late -> joiner');
  });

  it('refuses a body over the limit with 413, broken JSON and deep JSON with 400', async () => {
    const big = await api.post('/v1/workflows', { name: 'big', input: { blob: 'x'.repeat(1_100_000) } });
    expect(big.status).toBe(413);
    expect(big.body.message).toContain('larger than the limit');
    const broken = await api.request('POST', '/v1/workflows', '{"name": ');
    expect(broken.status).toBe(400);
    const deepR = await api.request(
      'POST',
      '/v1/workflows',
      `{"name":"deep","input":{"deep":${'['.repeat(5000)}1${']'.repeat(5000)}}}`,
    );
    expect(deepR.status).toBe(400);
    expect(deepR.body.message).toContain('nested deeper');
    const arr = await api.post('/v1/workflows', [1, 2]);
    expect(arr.status).toBe(400);
  });

  it('answers 404 naming the id for unknown or malformed ids', async () => {
    const r = await api.get('/v1/workflows/00000000-0000-4000-8000-000000000000');
    expect(r.status).toBe(404);
    expect(r.body.message).toContain('00000000-0000-4000-8000-000000000000');
    expect((await api.get('/v1/workflows/not-a-uuid')).status).toBe(404);
    expect((await api.get('/v1/tasks/not-a-uuid')).status).toBe(404);
    expect((await api.get('/v1/workflows/00000000-0000-4000-8000-000000000000/tasks/x')).status).toBe(404);
  });

  it('deletes only a finished workflow, and leaves none of its rows behind', async () => {
    const before = await dbSnapshot(api.databaseUrl);
    const wf = await api.createWorkflow(
      workflow({
        tags: ['deleted'],
        tasks: [task('a', { tags: ['t'] }), task('b', { requires: ['a'], requires_tags: ['t'] })],
      }),
    );
    expect((await api.request('PUT', `/v1/workflows/${wf.id}/data/k`, { value: 1 })).status).toBe(200);
    const early = await api.del(`/v1/workflows/${wf.id}`);
    expect(early.status).toBe(409);
    expect(early.body.message).toContain('RUNNING');
    await api.post(`/v1/workflows/${wf.id}/cancel`);
    expect((await api.del(`/v1/workflows/${wf.id}`)).status).toBe(204);
    expect((await api.get(`/v1/workflows/${wf.id}`)).status).toBe(404);
    expect(await dbSnapshot(api.databaseUrl)).toEqual(before);
  });

  it('finishes an empty sealed workflow at once', async () => {
    const wf = await api.createWorkflow(workflow({ sealed: true }));
    expect(wf.state).toBe('SUCCESS');
    expect(wf.finished_at).not.toBeNull();
  });

  it('registers and lists workers', async () => {
    const r = await api.post('/v1/workers', {
      name: 'web-01',
      tags: ['web', 'linux'],
      hostname: 'web-01.example',
      version: '1.0.0',
    });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'web-01', tags: ['linux', 'web'], running_task_ids: [] });
    const list = await api.get('/v1/workers');
    expect(list.body.items.map((w: any) => w.id)).toContain(r.body.id);
    expect((await api.post('/v1/workers', { tags: ['x'] })).status).toBe(400);
    const unknownWorker = await api.post('/v1/tasks/poll', {
      tags: [],
      worker_id: '00000000-0000-4000-8000-000000000000',
      wait_s: 0,
    });
    expect(unknownWorker.status).toBe(404);
  });

  it('exposes Prometheus metrics', async () => {
    const r = await api.get('/metrics');
    expect(r.status).toBe(200);
    expect(r.body).toContain('# TYPE tagflow_polls_waiting gauge');
    expect(await api.metric('tagflow_tasks_leased_total')).toBeGreaterThanOrEqual(0);
  });

  it('reports health of the database and Redis', async () => {
    const r = await api.get('/health');
    expect(r).toEqual({ status: 200, body: { status: 'ok', database: 'ok', redis: 'ok' } });
  });
});
