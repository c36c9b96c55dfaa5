import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Api, DATABASE, task, waitFor, waitForWorkflow, workflow } from './support/harness.js';

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
    const wf = await api.createWorkflow(
      workflow({
        tasks: [
          task('first', { tags: [tag] }),
          task('past', { tags: [tag], requires: ['first'], not_before: at(-60_000) }),
          task('ahead', { tags: [tag], requires: ['first'], not_before: at(3000) }),
        ],
      }),
    );
    expect(await api.complete(await api.take([tag]))).toMatchObject({ status: 200 });
    const [next] = await api.poll([tag], { wait_s: 5 });
    expect(next?.id).toBe((await api.task(wf.id, 'past')).id);
    expect((await api.task(wf.id, 'ahead')).state).toBe('WAITING');
    await waitFor(
      'ahead to be READY after its time',
      async () => (await api.task(wf.id, 'ahead')).state === 'READY',
      10_000,
    );
  });

  it('is kept across an API restart', async () => {
    const tag = `nb-${uniq()}`;
    const notBefore = at(3000);
    const wf = await api.createWorkflow(
      workflow({ tasks: [task('restarted', { tags: [tag], not_before: notBefore })] }),
    );
    expect((await api.task(wf.id, 'restarted')).state).toBe('WAITING');
    await api.stop();
    api = await Api.start({ databaseUrl: api.databaseUrl, prefix: api.prefix });
    if (Date.now() < Date.parse(notBefore) - 500) expect((await api.task(wf.id, 'restarted')).state).toBe('WAITING');
    const [leased] = await api.poll([tag], { wait_s: 20 });
    expect(leased).toBeDefined();
    expect(Date.parse((await api.get(`/v1/tasks/${leased.id}`)).body.started_at)).toBeGreaterThanOrEqual(
      Date.parse(notBefore),
    );
  });

  it('can be moved earlier, later, or taken away before the task runs', async () => {
    const tag = `nb-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        tasks: [
          task('earlier', { tags: [tag], not_before: at(3_600_000) }),
          task('later', { tags: [tag], not_before: at(1000) }),
          task('cleared', { tags: [tag], not_before: at(3_600_000) }),
        ],
      }),
    );
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
    expect(Date.parse((await api.get(`/v1/tasks/${later.id}`)).body.started_at)).toBeGreaterThanOrEqual(
      Date.parse(movedTo),
    );
  });

  it('holds the task of a sealed workflow (the one-task shortcut) without calling it stuck', async () => {
    const tag = `nb-${uniq()}`;
    const notBefore = at(5000); // well after the first poll ends, even on a loaded machine
    const r = await api.post('/v1/tasks', { tags: [tag], action: { type: 'noop' }, not_before: notBefore });
    expect(r.status).toBe(201);
    // Sealed, nothing ready or running: still not a deadlock while the time is ahead.
    expect(await api.poll([tag], { wait_s: 1 })).toEqual([]);
    expect((await api.get(`/v1/tasks/${r.body.id}`)).body).toMatchObject({ state: 'WAITING', error: null });
    const [leased] = await api.poll([tag], { wait_s: 10 });
    expect(leased?.id).toBe(r.body.id);
  });

  it('refuses a time without a zone, or not a time, naming the field, and creates nothing', async () => {
    for (const bad of [
      'tomorrow',
      '2026-12-01T10:00:00',
      '2026-13-01T10:00:00Z',
      '2026-02-30T10:00:00Z',
      '2026-12-01T24:00:00Z',
      1764583200000,
    ]) {
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
    const wf = await api.createWorkflow(
      workflow({
        tasks: [
          task('low', { tags: [tag], priority: -5 }),
          task('plain-1', { tags: [tag] }),
          task('high', { tags: [tag], priority: 50 }),
          task('plain-2', { tags: [tag], priority: 0 }),
          task('urgent', { tags: [tag], priority: 100 }),
        ],
      }),
    );
    expect((await api.task(wf.id, 'urgent')).priority).toBe(100);
    const order: string[] = [];
    for (let i = 0; i < 5; i++) order.push(...(await api.poll([tag], { wait_s: 2, max_tasks: 1 })).map((t) => t.id));
    expect(await names(wf.id, order)).toEqual(['urgent', 'high', 'plain-1', 'plain-2', 'low']);
  });

  it('across the tag sets a poll fits, takes the highest first', async () => {
    const [x, y] = [`prx-${uniq()}`, `pry-${uniq()}`];
    const wf = await api.createWorkflow(
      workflow({
        tasks: [
          task('x-plain', { tags: [x] }),
          task('y-high', { tags: [y], priority: 10 }),
          task('x-low', { tags: [x], priority: -10 }),
        ],
      }),
    );
    const order: string[] = [];
    for (let i = 0; i < 3; i++) order.push(...(await api.poll([x, y], { wait_s: 2, max_tasks: 1 })).map((t) => t.id));
    expect(await names(wf.id, order)).toEqual(['y-high', 'x-plain', 'x-low']);
  });

  it('a poll for several tasks takes them in priority order across its tag sets, not one tag set first', async () => {
    const [x, y] = [`prx-${uniq()}`, `pry-${uniq()}`];
    const wf = await api.createWorkflow(
      workflow({
        tasks: [
          task('x-top', { tags: [x], priority: 60 }),
          task('x-bottom', { tags: [x], priority: -100 }),
          task('y-mid', { tags: [y], priority: 50 }),
          task('y-low', { tags: [y], priority: -50 }),
        ],
      }),
    );
    const first = (await api.poll([x, y], { wait_s: 2, max_tasks: 3 })).map((t) => t.id);
    expect((await names(wf.id, first)).sort()).toEqual(['x-top', 'y-low', 'y-mid']);
    const rest = (await api.poll([x, y], { wait_s: 2, max_tasks: 3 })).map((t) => t.id);
    expect(await names(wf.id, rest)).toEqual(['x-bottom']);
  });

  it('gives a parked poll the highest of the tasks a report releases', async () => {
    const tag = `prh-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        tasks: [
          task('root', { tags: [tag] }),
          task('after-low', { tags: [tag], requires: ['root'], priority: -1 }),
          task('after-high', { tags: [tag], requires: ['root'], priority: 1 }),
        ],
      }),
    );
    const root = await api.take([tag]);
    const parked = api.poll([tag], { wait_s: 10, max_tasks: 1 });
    await api.pollsParked(1);
    expect(await api.complete(root)).toMatchObject({ status: 200 });
    const [got] = await parked;
    expect(await names(wf.id, [got.id])).toEqual(['after-high']);
  });

  it('refuses a priority out of -100..100 or not an integer, naming the field', async () => {
    for (const bad of [101, -101, 1.5, '5']) {
      const r = await api.post(
        '/v1/workflows',
        workflow({ name: `bad-${uniq()}`, tasks: [task('x', { priority: bad })] }),
      );
      expect({ bad, status: r.status }).toEqual({ bad, status: 400 });
      expect(JSON.stringify(r.body)).toContain('tasks.0.priority');
    }
  });
});

describe('concurrency limits', () => {
  /** The most tasks RUNNING at once in a workflow, replayed from its recorded transitions (in commit order). */
  async function mostRunning(on: Api, workflowId: string): Promise<number> {
    let after: string | undefined;
    let running = 0;
    let most = 0;
    for (;;) {
      const page = (await on.get(`/v1/workflows/${workflowId}/events?limit=1000${after ? `&after=${after}` : ''}`))
        .body;
      for (const e of page.items) {
        if (!e.task_id) continue;
        if (e.to === 'RUNNING') running++;
        if (e.from === 'RUNNING') running--;
        most = Math.max(most, running);
      }
      if (!page.next) return most;
      after = page.next;
    }
  }

  it('never runs more than a workflow limit allows, with 10 pollers on two replicas, and every task finishes', async () => {
    const tag = `web-${uniq()}`;
    // Two replicas share PostgreSQL; SQLite serves one API process, so there both sets of pollers use it.
    const other = DATABASE === 'postgres' ? await Api.start({ databaseUrl: api.databaseUrl, prefix: api.prefix }) : api;
    try {
      const tasks = Array.from({ length: 20 }, (_, i) => task(`restart-web-${i}`, { tags: [tag] }));
      const wf = await api.createWorkflow(workflow({ sealed: true, limits: { [tag]: 2 }, tasks }));
      expect(wf.limits).toEqual({ [tag]: 2 });
      let done = 0;
      // Held by the pollers from the answer to the report: within the time each task is
      // RUNNING in the database (leased before the answer, ended after the report is sent).
      let holding = 0;
      let mostHeld = 0;
      const poller = async (on: Api) => {
        while (done < 20) {
          const [t] = await on.poll([tag], { wait_s: 1 });
          if (!t) continue;
          mostHeld = Math.max(mostHeld, ++holding);
          // Holds the lease a little while, as a restart would.
          await new Promise((r) => setTimeout(r, 30 + Math.random() * 70));
          holding--;
          expect((await on.complete(t)).status).toBe(200);
          done++;
        }
      };
      await Promise.all(Array.from({ length: 10 }, (_, i) => poller(i % 2 ? other : api)));
      await waitForWorkflow(api, wf.id, ['SUCCESS'], 20_000);
      // Never more than 2; and ten pollers holding each task 30-100 ms fill the room (a limit enforced as 1 would show).
      expect(mostHeld).toBe(2);
      // SQLite commits one transaction at a time, so its history is in commit order and the
      // replay is exact. PostgreSQL's history is in transaction order (see docs/api.md): a
      // lease whose transaction began before a report's and counted after it committed shows
      // before that report, so a replay can overstate by the overlap.
      if (DATABASE === 'sqlite') expect(await mostRunning(api, wf.id)).toBe(2);
    } finally {
      if (other !== api) await other.stop();
    }
  });

  it('a namespace-wide limit holds tasks across workflows, shows them held, and releases them at once when raised or when a task ends', async () => {
    // The reconciler (which also releases held tasks) ticks once a minute here: what is
    // released within the test is released by the change itself.
    const api = await Api.start({ env: { RECONCILE_INTERVAL_MS: '60000' } });
    try {
      const tag = `db-${uniq()}`;
      const put = await api.request('PUT', `/v1/limits/${tag}`, { max_running: 1 });
      expect(put).toMatchObject({ status: 200, body: { tag, max_running: 1, running: 0, held: 0 } });
      const one = await api.createWorkflow(
        workflow({ tasks: [task('migrate-a', { tags: [tag] }), task('migrate-b', { tags: [tag] })] }),
      );
      const two = await api.createWorkflow(workflow({ tasks: [task('migrate-c', { tags: [tag] })] }));
      const first = await api.poll([tag], { wait_s: 2, max_tasks: 5 });
      expect(first).toHaveLength(1);
      // The others are READY but held: no poll gets them while the first runs.
      expect(await api.poll([tag], { wait_s: 0, max_tasks: 5 })).toEqual([]);
      const held = (
        await Promise.all([api.task(one.id, 'migrate-a'), api.task(one.id, 'migrate-b'), api.task(two.id, 'migrate-c')])
      ).filter((t) => t.id !== first[0].id);
      for (const t of held) expect(t).toMatchObject({ state: 'READY', held_by_limit: { tag, scope: 'namespace' } });
      expect((await api.get(`/v1/limits/${tag}`)).body).toMatchObject({ max_running: 1, running: 1, held: 2 });
      expect((await api.get('/v1/limits')).body.items.map((l: { tag: string }) => l.tag)).toContain(tag);
      // The running one ends: a parked poll gets the next held task at once.
      const next = api.poll([tag], { wait_s: 10, max_tasks: 5 });
      await api.pollsParked(1);
      expect((await api.complete(first[0])).status).toBe(200);
      const second = await next;
      expect(second).toHaveLength(1);
      expect(held.map((t) => t.id)).toContain(second[0].id);
      first[0] = second[0];
      held.splice(
        held.findIndex((t) => t.id === second[0].id),
        1,
      );
      const third = (
        await Promise.all([api.task(one.id, 'migrate-a'), api.task(one.id, 'migrate-b'), api.task(two.id, 'migrate-c')])
      ).find((t) => t.state === 'READY');
      expect(third.held_by_limit).toEqual({ tag, scope: 'namespace' });
      // Raised: a poll parked now gets the task still held without waiting for the running one.
      const parked = api.poll([tag], { wait_s: 10, max_tasks: 5 });
      await api.pollsParked(1);
      const started = Date.now();
      expect((await api.request('PUT', `/v1/limits/${tag}`, { max_running: 3 })).status).toBe(200);
      const more = await parked;
      const got = [...more];
      if (got.length < held.length) got.push(...(await api.poll([tag], { wait_s: 5, max_tasks: 5 })));
      expect(got.map((t) => t.id).sort()).toEqual(held.map((t) => t.id).sort());
      expect(Date.now() - started).toBeLessThan(5000);
      // Lowered below what runs: nothing running is stopped; each still completes.
      expect((await api.request('PUT', `/v1/limits/${tag}`, { max_running: 0 })).body).toMatchObject({
        max_running: 0,
        running: 2,
      });
      for (const t of [...first, ...got]) expect((await api.complete(t)).status).toBe(200);
      expect((await api.request('DELETE', `/v1/limits/${tag}`)).status).toBe(204);
      expect((await api.get(`/v1/limits/${tag}`)).status).toBe(404);
      expect((await api.request('DELETE', `/v1/limits/${tag}`)).status).toBe(404);
    } finally {
      await api.stop();
    }
  });

  /**
   * On an API of its own (no other limit anywhere, the reconciler a minute away): a limit of
   * 0 on a new tag and a workflow of two tasks a poll finds held by it; `before` runs, then
   * `release` must hand both to a poll parked meanwhile within 5 s.
   */
  async function heldThenReleased(
    before: (api: Api, tag: string, workflowId: string) => Promise<void>,
    release: (api: Api, tag: string, workflowId: string) => Promise<void>,
  ): Promise<void> {
    const api = await Api.start({ env: { RECONCILE_INTERVAL_MS: '60000' } });
    try {
      const tag = `held-${uniq()}`;
      expect((await api.request('PUT', `/v1/limits/${tag}`, { max_running: 0 })).status).toBe(200);
      const wf = await api.createWorkflow(
        workflow({ tasks: [task('a', { tags: [tag] }), task('b', { tags: [tag] })] }),
      );
      expect(await api.poll([tag], { wait_s: 0, max_tasks: 5 })).toEqual([]);
      expect((await api.task(wf.id, 'a')).held_by_limit).toEqual({ tag, scope: 'namespace' });
      await before(api, tag, wf.id);
      const parked = api.poll([tag], { wait_s: 10, max_tasks: 5 });
      await api.pollsParked(1);
      const started = Date.now();
      await release(api, tag, wf.id);
      const got = await parked;
      if (got.length < 2) got.push(...(await api.poll([tag], { wait_s: 5, max_tasks: 5 })));
      expect(got.map((t) => t.name).sort()).toEqual(['a', 'b']);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await api.stop();
    }
  }

  it('releases the tasks held for the last limit at once when it is removed', async () => {
    await heldThenReleased(
      async () => undefined,
      async (api, tag) => expect((await api.request('DELETE', `/v1/limits/${tag}`)).status).toBe(204),
    );
  });

  it('releases the tasks of a paused workflow held for a limit removed meanwhile when it resumes', async () => {
    await heldThenReleased(
      async (api, tag, wf) => {
        expect((await api.post(`/v1/workflows/${wf}/pause`)).status).toBe(200);
        expect((await api.request('DELETE', `/v1/limits/${tag}`)).status).toBe(204);
        // Paused: its tasks stay held (a paused workflow hands nothing out).
        expect(await api.poll([tag], { wait_s: 0, max_tasks: 5 })).toEqual([]);
      },
      async (api, _tag, wf) => expect((await api.post(`/v1/workflows/${wf}/resume`)).status).toBe(200),
    );
  });

  it('gives the room back when a running task fails, is cancelled, or its lease expires', async () => {
    const tag = `gate-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        limits: { [tag]: 1 },
        on_failure: 'continue',
        tasks: ['one', 'two', 'three', 'four'].map((n) => task(n, { tags: [tag], lease_s: 2 })),
      }),
    );
    const a = await api.take([tag]);
    expect(await api.poll([tag], { wait_s: 0 })).toEqual([]);
    // A failure with no retry left ends its lease: the next one is handed out.
    expect((await api.fail(a, { message: 'boom', retryable: false })).status).toBe(200);
    const b = await api.take([tag], 5);
    // Cancelled while running: it holds its place until its worker reports, then gives it back.
    expect((await api.post(`/v1/tasks/${b.id}/cancel`)).status).toBe(200);
    expect(await api.poll([tag], { wait_s: 0 })).toEqual([]);
    expect((await api.fail(b, { message: 'stopped on cancel' })).status).toBe(200);
    const c = await api.take([tag], 5);
    // This one is never heartbeated: its lease expires and the last task gets the room.
    const d = await api.take([tag], 10);
    expect((await api.get(`/v1/tasks/${d.id}`)).body.state).toBe('RUNNING');
    // The history shows a transaction's events once every older transaction in the database
    // has ended (so a stream never skips one): under load, that can take a moment.
    const expired = await waitFor('the expiry in the workflow history', async () => {
      const events = (await api.get(`/v1/workflows/${wf.id}/events?limit=1000`)).body.items as any[];
      const found = events.filter((e) => e.from === 'RUNNING' && /LEASE_EXPIRED/.test(e.reason ?? ''));
      return found.length > 0 ? found : undefined;
    });
    expect(expired.map((e) => e.task_id)).toEqual([c.id]);
    expect(await mostRunning(api, wf.id)).toBe(1);
  });

  it('lets only an operator granted every tag set a namespace-wide limit (it holds tasks of any other tags too)', async () => {
    const admin = `tfk_${'a'.repeat(30)}`;
    const guarded = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin } });
    try {
      const as = (token: string) => ({ authorization: `Bearer ${token}` });
      const key = async (tags: string[]) =>
        (await guarded.request('POST', '/v1/keys', { name: `op-${uniq()}`, role: 'operator', tags }, as(admin))).body
          .token as string;
      const narrow = await key(['linux']);
      const wide = await key(['*']);
      const refused = await guarded.request('PUT', '/v1/limits/linux', { max_running: 0 }, as(narrow));
      expect(refused.status).toBe(403);
      expect(refused.body.message).toContain('needs the grant *');
      expect((await guarded.request('PUT', '/v1/limits/linux', { max_running: 0 }, as(wide))).status).toBe(200);
      expect((await guarded.request('DELETE', '/v1/limits/linux', undefined, as(narrow))).status).toBe(403);
      const reader = (await guarded.request('POST', '/v1/keys', { name: `r-${uniq()}`, role: 'reader' }, as(admin)))
        .body.token as string;
      expect((await guarded.request('GET', '/v1/limits/linux', undefined, as(reader))).body).toMatchObject({
        max_running: 0,
      });
      expect((await guarded.request('PUT', '/v1/limits/linux', { max_running: 5 }, as(reader))).status).toBe(403);
    } finally {
      await guarded.stop();
    }
  });

  it('refuses a bad limit, naming the field, and creates nothing', async () => {
    for (const [body, field] of [
      [{ max_running: -1 }, 'max_running'],
      [{ max_running: 1.5 }, 'max_running'],
      [{}, 'max_running'],
      [{ max_running: 100_001 }, 'max_running'],
    ] as const) {
      const r = await api.request('PUT', `/v1/limits/ok-${uniq()}`, body);
      expect({ body, status: r.status }).toEqual({ body, status: 400 });
      expect(JSON.stringify(r.body)).toContain(field);
    }
    expect((await api.request('PUT', `/v1/limits/${encodeURIComponent('bad tag')}`, { max_running: 1 })).status).toBe(
      400,
    );
    for (const limits of [{ 'bad tag': 1 }, { web: -1 }, { web: 'two' }, ['web']]) {
      const r = await api.post('/v1/workflows', workflow({ name: `bad-${uniq()}`, limits }));
      expect({ limits, status: r.status }).toEqual({ limits, status: 400 });
      expect(JSON.stringify(r.body)).toContain('limits');
    }
    expect((await api.get('/v1/limits')).body.items.filter((l: { tag: string }) => l.tag.startsWith('ok-'))).toEqual(
      [],
    );
  });
});
