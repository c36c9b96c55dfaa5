import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Api, DATABASE, task, waitFor, workflow } from './support/harness.js';

const uniq = () => Math.random().toString(36).slice(2, 10);
/** Schedules every second are refused by default (SCHEDULE_MIN_INTERVAL_S=60); the tests need them. */
const FAST = { SCHEDULE_MIN_INTERVAL_S: '1' };

/** Schedules: a workflow per cron tick, once per tick whatever the number of replicas. */
describe('schedules', () => {
  let api: Api;
  /** A second replica on the same database and Redis (PostgreSQL only: SQLite serves one API process). */
  let other: Api | null = null;
  beforeAll(async () => {
    api = await Api.start({ env: FAST });
    if (DATABASE === 'postgres')
      other = await Api.start({ databaseUrl: api.databaseUrl, prefix: api.prefix, env: FAST });
  });
  afterAll(async () => {
    await Promise.all([api?.stop(), other?.stop()]);
  });

  const create = async (spec: object) => {
    const r = await api.post('/v1/schedules', spec);
    if (r.status !== 201) throw new Error(`create schedule: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const runsOf = async (id: string) =>
    (await api.get(`/v1/schedules/${id}`)).body.runs as {
      tick: string;
      outcome: string;
      workflow_id: string | null;
      message: string | null;
    }[];
  const workflowsNamed = async (name: string) =>
    (await api.get(`/v1/workflows?name=${name}&limit=500`)).body.items as {
      id: string;
      input: { scheduled_at?: string };
    }[];

  it('creates one workflow per tick, with scheduled_at in its input, however many replicas run', async () => {
    const name = `every-second-${uniq()}`;
    const s = await create({
      name,
      cron: '* * * * * *',
      overlap: 'allow',
      workflow: workflow({ name, input: { region: 'eu' }, tasks: [task('tick', { tags: [`none-${uniq()}`] })] }),
    });
    expect(s).toMatchObject({ name, cron: '* * * * * *', timezone: 'UTC', overlap: 'allow', paused: false });
    expect(Date.parse(s.next_run_at)).toBeGreaterThan(Date.now() - 1000);
    await waitFor('four ticks to have run', async () => (await runsOf(s.id)).length >= 4, 15_000);
    await api.post(`/v1/schedules/${s.id}/pause`);
    const runs = await runsOf(s.id);
    const made = await workflowsNamed(name);
    // Each tick once: as many workflows as runs, each run's workflow with its own tick.
    expect(runs.every((r) => r.outcome === 'created')).toBe(true);
    expect(new Set(runs.map((r) => r.tick)).size).toBe(runs.length);
    expect(made.map((w) => w.id).sort()).toEqual(runs.map((r) => r.workflow_id).sort());
    for (const r of runs)
      expect(made.find((w) => w.id === r.workflow_id)?.input).toEqual({ region: 'eu', scheduled_at: r.tick });
    for (const r of runs) expect(Date.parse(r.tick) % 1000).toBe(0);
  });

  it('skips a tick while the previous run is unfinished (overlap: skip), and runs again once it has finished', async () => {
    const name = `nightly-${uniq()}`;
    const s = await create({
      name,
      cron: '* * * * * *',
      workflow: workflow({ name, tasks: [task('long', { tags: [`nobody-${uniq()}`] })] }),
    });
    expect(s.overlap).toBe('skip');
    await waitFor('a skipped tick', async () => (await runsOf(s.id)).some((r) => r.outcome === 'skipped'), 10_000);
    const [first] = await workflowsNamed(name);
    const skipped = (await runsOf(s.id)).filter((r) => r.outcome === 'skipped');
    expect(skipped[0].message).toContain(`workflow ${first.id}, is still RUNNING`);
    expect(await workflowsNamed(name)).toHaveLength(1);
    // Manual runs honour it too.
    expect((await api.post(`/v1/schedules/${s.id}/trigger`)).status).toBe(409);
    expect((await api.post(`/v1/workflows/${first.id}/cancel`)).status).toBe(200);
    await waitFor(
      'a second workflow once the first ended',
      async () => (await workflowsNamed(name)).length === 2,
      10_000,
    );
    await api.del(`/v1/schedules/${s.id}`);
  });

  it('pauses, resumes, triggers and deletes', async () => {
    const name = `hourly-${uniq()}`;
    const s = await create({
      name,
      cron: '0 * * * *',
      timezone: 'Europe/Berlin',
      overlap: 'allow',
      workflow: workflow({ name }),
    });
    expect(new Date(s.next_run_at).getUTCMinutes()).toBe(0);
    const paused = await api.post(`/v1/schedules/${s.id}/pause`);
    expect(paused.body).toMatchObject({ paused: true, next_run_at: null });
    const resumed = await api.post(`/v1/schedules/${s.id}/resume`);
    expect(resumed.body).toMatchObject({ paused: false, next_run_at: s.next_run_at });
    const triggered = await api.post(`/v1/schedules/${s.id}/trigger`);
    expect(triggered).toMatchObject({ status: 201, body: { name, state: 'RUNNING' } });
    expect(triggered.body.input.scheduled_at).toBeDefined();
    expect((await api.get(`/v1/schedules/${s.id}`)).body).toMatchObject({
      last_workflow_id: triggered.body.id,
      next_run_at: s.next_run_at,
      runs: [{ outcome: 'created', workflow_id: triggered.body.id }],
    });
    expect((await api.get('/v1/schedules')).body.items.map((x: { name: string }) => x.name)).toContain(name);
    expect((await api.del(`/v1/schedules/${s.id}`)).status).toBe(204);
    expect((await api.get(`/v1/schedules/${s.id}`)).status).toBe(404);
  });

  it('after the API was down, runs the latest missed tick once, not one per missed tick', async () => {
    const name = `missed-${uniq()}`;
    const s = await create({ name, cron: '* * * * * *', overlap: 'allow', workflow: workflow({ name }) });
    await waitFor('a first run', async () => (await runsOf(s.id)).length >= 1, 10_000);
    await other?.stop();
    other = null;
    await api.stop();
    const downFrom = Date.now();
    await new Promise((r) => setTimeout(r, 4000)); // the outage being tested: four ticks with no API
    const before = Date.now();
    api = await Api.start({ databaseUrl: api.databaseUrl, prefix: api.prefix, env: FAST });
    // A run for a tick after the restart: anything owed for the outage has been done by then.
    await waitFor(
      'a run for a tick after the restart',
      async () => (await runsOf(s.id)).some((r) => Date.parse(r.tick) >= before),
      10_000,
    );
    await api.post(`/v1/schedules/${s.id}/pause`);
    const missed = (await runsOf(s.id)).filter(
      (r) => Date.parse(r.tick) > downFrom + 1000 && Date.parse(r.tick) < before - 1000,
    );
    // The ticks that passed while down: at most the latest of them ran (the rest are not replayed).
    expect(missed.length).toBeLessThanOrEqual(1);
  });

  it('never shows a callback secret of its workflow or tasks', async () => {
    const name = `secretive-${uniq()}`;
    const secret = `never-shown-${uniq()}`;
    const callback = { url: 'https://engine.example.com/hook', secret };
    const r = await api.post('/v1/schedules', {
      name,
      cron: '0 2 * * *',
      workflow: workflow({
        name,
        callback,
        tasks: [task('t', { callback, on_error: [{ run: [task('fix', { callback })] }] })],
      }),
    });
    expect(r.status).toBe(201);
    for (const shown of [
      r.body,
      (await api.get(`/v1/schedules/${r.body.id}`)).body,
      (await api.get('/v1/schedules')).body,
    ]) {
      expect(JSON.stringify(shown)).not.toContain(secret);
    }
    expect(r.body.workflow.callback).toEqual({ url: callback.url, signed: true });
    const wf = (await api.post(`/v1/schedules/${r.body.id}/trigger`)).body;
    const t = await api.task(wf.id, 't');
    expect(t.callback).toEqual({ url: callback.url, signed: true });
    expect(JSON.stringify(t)).not.toContain(secret);
  });

  it('refuses a bad cron, zone or workflow, naming the field, and creates nothing', async () => {
    const name = `bad-${uniq()}`;
    const cases: [object, number, string][] = [
      [{ name, cron: 'every day', workflow: workflow() }, 400, 'cron'],
      [{ name, cron: '61 * * * *', workflow: workflow() }, 400, 'cron'],
      [{ name, cron: '0 2 * * *', timezone: 'Mars/Olympus', workflow: workflow() }, 400, 'timezone'],
      [
        { name, cron: '0 2 * * *', workflow: workflow({ tasks: [task('x', { retry: { count: 'many' } })] }) },
        400,
        'workflow.tasks.0.retry',
      ],
      [
        {
          name,
          cron: '0 2 * * *',
          workflow: workflow({ tasks: [task('a', { requires: ['b'] }), task('b', { requires: ['a'] })] }),
        },
        422,
        'workflow.tasks',
      ],
      [{ name, cron: '0 2 * * *' }, 400, 'workflow'],
      [{ name, cron: '0 2 * * *', overlap: 'sometimes', workflow: workflow() }, 400, 'overlap'],
    ];
    for (const [body, status, field] of cases) {
      const r = await api.post('/v1/schedules', body);
      expect({ body, status: r.status }).toEqual({ body, status });
      expect(JSON.stringify(r.body)).toContain(field);
    }
    expect((await api.get('/v1/schedules')).body.items.filter((x: { name: string }) => x.name === name)).toEqual([]);
    await create({ name, cron: '0 2 * * *', workflow: workflow() });
    expect((await api.post('/v1/schedules', { name, cron: '0 3 * * *', workflow: workflow() })).status).toBe(409);
  });

  it('refuses by default a cron that fires more often than once a minute', async () => {
    const plain = await Api.start();
    try {
      const r = await plain.post('/v1/schedules', {
        name: `often-${uniq()}`,
        cron: '*/30 * * * * *',
        workflow: workflow(),
      });
      expect(r.status).toBe(400);
      expect(r.body.message).toContain('the shortest interval allowed is 60 s (SCHEDULE_MIN_INTERVAL_S)');
      expect(
        (await plain.post('/v1/schedules', { name: `minutely-${uniq()}`, cron: '* * * * *', workflow: workflow() }))
          .status,
      ).toBe(201);
    } finally {
      await plain.stop();
    }
  });
});
