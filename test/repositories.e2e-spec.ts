import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource, EntityManager } from 'typeorm';
import { newId, tagsetId, type TaskState } from '@tagflow/domain';
import {
  createDataSource,
  Database,
  type Repositories,
  type TaskEntity,
  type WorkflowEntity,
} from '@tagflow/persistence';
import { query } from '../libs/persistence/src/dialect.js';
import { statementName } from '../libs/persistence/src/prepared.js';
import { DATABASE, freshDatabaseUrl, waitFor } from './support/harness.js';

/**
 * Every repository statement against the real database of the run (SQLite, then
 * PostgreSQL): what each takes and returns, as its header says. The statements are the
 * only SQL in Tagflow, and two dialects must agree on each.
 */
describe(`repositories on ${DATABASE}`, () => {
  let db: Database;
  let source: DataSource;
  beforeAll(async () => {
    source = createDataSource(await freshDatabaseUrl(), { preparedStatements: process.env.TEST_PG_PREPARED === 'on' });
    db = new Database(source);
    await db.initialize();
  });
  afterAll(async () => {
    await db.close();
  });

  const now = Date.now();
  const wfRow = (overrides: Partial<WorkflowEntity> = {}): WorkflowEntity => ({
    id: newId(now),
    name: 'wf',
    namespace: 'default',
    description: null,
    tags: ['team:ops'],
    input: { region: 'eu' },
    state: 'RUNNING',
    sealed: false,
    on_failure: 'fail',
    rollback_started: false,
    settle_pending: false,
    settle_after: '',
    retention_days: null,
    limits: {},
    callback: null,
    created_by: null,
    created_at: now,
    updated_at: now,
    finished_at: null,
    ...overrides,
  });
  const taskRow = (wf: WorkflowEntity, name: string, overrides: Partial<TaskEntity> = {}): TaskEntity => {
    const tags = overrides.tags ?? [];
    return {
      id: newId(Date.now()),
      workflow_id: wf.id,
      namespace: wf.namespace,
      name,
      kind: 'task',
      parent_task_id: null,
      tags,
      tagset_id: tagsetId(tags),
      action: { type: 'noop' },
      input: {},
      requires: [],
      requires_tags: [],
      produces: [],
      data_requires: [],
      retry: { count: 0, delay_s: 0, backoff: 1, max_delay_s: null },
      timeout_s: null,
      lease_s: 30,
      on_error: [],
      revert: null,
      state: 'WAITING',
      attempt: 1,
      handbacks: 0,
      handled: false,
      handling: false,
      cancel_requested: false,
      resolved_input: null,
      output: null,
      error: null,
      stdout: null,
      stderr: null,
      exit_code: null,
      progress: null,
      worker_id: null,
      lease_token: null,
      lease_expires_at: null,
      deadline_at: null,
      lease_outcome: null,
      created_by: null,
      created_at: now,
      updated_at: now,
      ready_at: null,
      not_before: null,
      wake_at: null,
      priority: 0,
      held_limit: null,
      callback: null,
      started_at: null,
      finished_at: null,
      ...overrides,
    };
  };

  /** A workflow with: a (tags web), b (requires a, tags web), c (selects web, reads key k), p (produces k). */
  async function seed() {
    const wf = wfRow();
    const a = taskRow(wf, 'a', { tags: ['web'] });
    const b = taskRow(wf, 'b', { tags: ['web'], requires: ['a'] });
    const c = taskRow(wf, 'c', {
      requires_tags: ['web'],
      data_requires: ['k'],
      on_error: [{ run: [{ name: 'c-fix', action: { type: 'noop' } }] }],
    });
    const p = taskRow(wf, 'p', { produces: ['k'], output: { n: 1 } });
    await db.transaction(async (r) => {
      await r.workflows.insert(wf);
      await r.tasks.insert([a, b, c, p]);
      await r.deps.insertFor([a, b, c, p], [[], [], ['c-fix'], []]);
    });
    return { wf, a, b, c, p };
  }

  it('writes and reads tasks as entities: JSON, booleans and times as declared', async () => {
    const { wf, a, c } = await seed();
    const r = db.read();
    const [loadedC, loadedA] = await r.tasks.load([c.id, a.id]);
    expect(loadedA).toEqual(a);
    expect(loadedC.on_error).toEqual(c.on_error);
    expect(loadedC.handled).toBe(false);
    expect(await r.tasks.get('00000000-0000-0000-0000-000000000000')).toBeNull();
    expect((await r.tasks.getInWorkflow(wf.id, 'a', false))?.id).toBe(a.id);
    expect((await r.tasks.getInWorkflow(wf.id, a.id, true))?.name).toBe('a');
    expect((await r.tasks.firstOf(wf.id))?.id).toBe(a.id);
    expect([...(await r.tasks.existingNames(wf.id, ['a', 'zz', 'c']))].sort()).toEqual(['a', 'c']);
    expect((await r.tasks.page(wf.id, { tag: 'web', limit: 1 })).map((t) => t.name)).toEqual(['a', 'b']); // limit + 1
    expect(
      (await r.tasks.page(wf.id, { limit: 10, after: { created_at: a.created_at, id: a.id } })).map((t) => t.name),
    ).toEqual(['b', 'c', 'p']);
    expect((await r.tasks.graph(wf.id, true)).find((g) => g.name === 'c')).toEqual({
      name: 'c',
      tags: [],
      requires: [],
      requires_tags: ['web'],
      produces: [],
      data_requires: ['k'],
      waiting: true,
    });
    expect((await r.tasks.countsByState([wf.id])).get(wf.id)).toEqual({ WAITING: 4 });
  });

  it('writes text as it is, whatever it holds: quotes, backslashes, braces, commas, the word NULL, nothing', async () => {
    const wf = wfRow();
    const awkward = ['a"b', 'back\\slash', '{x,y}', 'NULL', '', ' spaced ', 'line\nbreak', 'ünï cödé', '\\"'];
    const rows = awkward.map((text, i) =>
      taskRow(wf, `${text}-${i}`, {
        tags: [text === '' ? 'empty' : text],
        input: { text, list: awkward },
        stdout: text,
        stderr: i % 2 === 0 ? null : text,
        exit_code: i === 0 ? null : -i,
        handled: i % 2 === 0,
      }),
    );
    await db.transaction(async (r) => {
      await r.workflows.insert(wf);
      await r.tasks.insert(rows);
    });
    const loaded = await db.read().tasks.load(rows.map((t) => t.id));
    expect(loaded).toEqual(rows);
  });

  it('counts, for the cycle check, ended tasks only when a rerun would make them wait again', async () => {
    const { wf, c } = await seed(); // c selects web and reads k
    const end = (code: string, to: 'SKIPPED' | 'ERROR', from: TaskState) =>
      db.transaction((r) =>
        r.transitions.tasks({ ids: [c.id], from: [from], to, set: { error: { code, message: 'x' } }, reason: code }),
      );
    const seen = async (orAgain: boolean) => ({
      probe: await db.read().deps.anyWaitingFor(wf.id, ['web'], ['k'], orAgain),
      graph: (await db.read().tasks.graph(wf.id, orAgain)).find((g) => g.name === 'c')!.waiting,
    });
    await end('DEPENDENCY_CANCELLED', 'SKIPPED', 'WAITING'); // nothing brings it back
    expect(await seen(true)).toEqual({ probe: false, graph: false });
    await db.transaction((r) => r.transitions.tasks({ ids: [c.id], from: ['SKIPPED'], to: 'WAITING', reason: 'back' }));
    await end('DEPENDENCY_FAILED', 'SKIPPED', 'WAITING'); // back when the failed task is rerun
    expect(await seen(true)).toEqual({ probe: true, graph: true });
    expect(await seen(false)).toEqual({ probe: false, graph: false });
    await db.transaction((r) => r.transitions.tasks({ ids: [c.id], from: ['SKIPPED'], to: 'WAITING', reason: 'back' }));
    await end('DEADLOCK', 'ERROR', 'WAITING'); // waits again when rerun
    expect(await seen(true)).toEqual({ probe: true, graph: true });
  });

  it('finds dependents by name, tag and data key, and open members of selected tags', async () => {
    const { wf, a, b, c, p } = await seed();
    const r = db.read();
    expect((await r.deps.dependentsOf(wf.id, [a])).sort()).toEqual([b.id, c.id].sort()); // b by name, c by tag web
    expect(await r.deps.dependentsOf(wf.id, [p])).toEqual([c.id]); // c reads k, which p produces
    expect(await r.deps.dependentsOf(wf.id, [{ name: 'nobody', tags: [] }])).toEqual([]);
    expect([...(await r.deps.tagsWithOpenMembers(wf.id, ['web', 'unselected']))]).toEqual(['web']);
    expect(await r.deps.waitingOn(wf.id, ['tag', 'data'])).toEqual([c.id]);
    expect([...(await r.deps.producible(wf.id, ['k', 'other']))]).toEqual(['k']);
    expect(await r.deps.anyWaitingFor(wf.id, ['web'], [], false)).toBe(true);
    expect(await r.deps.anyWaitingFor(wf.id, ['db'], ['other'], true)).toBe(false);
    expect(await r.deps.reserved(wf.id, ['c-fix', 'x'])).toEqual([{ name: 'c-fix', owner_task_id: c.id }]);
    expect(await r.deps.requiringName(wf.id, 'a')).toEqual([b.id]);
    const byTag = await r.tasks.viewsByTag(wf.id, ['web']);
    expect(
      byTag
        .get('web')
        ?.map((v) => v.name)
        .sort(),
    ).toEqual(['a', 'b']);
    expect((await r.tasks.viewsByName(wf.id, ['a'])).get('a')).toEqual({
      id: a.id,
      name: 'a',
      state: 'WAITING',
      handled: false,
      handling: false,
      errorCode: null,
    });
  });

  it('changes states and flags only as the state machine allows, each with an event row', async () => {
    const { a, b } = await seed();
    await db.transaction(async (r) => {
      expect(
        await r.transitions.tasks({
          ids: [a.id, b.id],
          from: ['WAITING'],
          to: 'READY',
          set: { ready_at: now },
          reason: 'met',
        }),
      ).toEqual([a.id, b.id]);
      // A guarded change of rows no longer in `from` changes nothing.
      expect(await r.transitions.tasks({ ids: [a.id], from: ['WAITING'], to: 'SKIPPED', reason: 'late' })).toEqual([]);
      await expect(
        r.transitions.tasks({ ids: [a.id], from: ['READY'], to: 'SUCCESS', reason: 'skip ahead' }),
      ).rejects.toThrow('illegal task transition READY -> SUCCESS');
      await expect(
        r.transitions.tasks({ ids: [a.id], from: ['READY'], flags: { handling: true }, reason: 'x' }),
      ).rejects.toThrow('task flag handling cannot change in READY -> READY');
      await expect(
        r.transitions.tasks({ ids: [a.id], from: ['READY'], to: 'WAITING', set: { handled: true }, reason: 'x' }),
      ).rejects.toThrow('handled changes only as a transition');
    });
    const leased = await db.transaction((r) =>
      r.transitions.claim([
        { taskId: a.id, attempt: 1, tagsetId: a.tagset_id, token: 'tok-a', workerId: null },
        { taskId: b.id, attempt: 2, tagsetId: b.tagset_id, token: 'tok-b', workerId: null }, // a stale attempt
      ]),
    );
    expect(leased.map((t) => [t.id, t.state, t.lease_token])).toEqual([[a.id, 'RUNNING', 'tok-a']]);
    await db.transaction(async (r) => {
      expect(
        await r.transitions.tasks({
          ids: [a.id],
          from: ['RUNNING'],
          flags: { cancel_requested: true },
          reason: 'cancel requested',
        }),
      ).toEqual([a.id]);
      expect(
        await r.transitions.tasks({
          ids: [a.id],
          from: ['RUNNING'],
          flags: { cancel_requested: true },
          reason: 'again',
        }),
      ).toEqual([]); // already set
      expect(await r.leases.extend(a.id, 'tok-a', now + 60_000, now, { pct: 50 })).toBe(true);
      expect(await r.leases.extend(a.id, 'other', now + 60_000, now, undefined)).toBe(false);
      await r.leases.setResolvedInput(a.id, 'tok-a', { x: 1 });
      const [task] = await r.tasks.load([a.id]);
      await r.transitions.each(
        'RUNNING',
        'SUCCESS',
        [{ task, set: { output: { ok: true }, lease_outcome: 'complete' } }],
        'completed',
      );
      expect(task.state).toBe('SUCCESS');
    });
    const r = db.read();
    const done = (await r.tasks.get(a.id))!;
    expect(done).toMatchObject({
      state: 'SUCCESS',
      cancel_requested: true,
      progress: { pct: 50 },
      resolved_input: { x: 1 },
      output: { ok: true },
      lease_expires_at: now + 60_000,
    });
    expect((await r.events.ofTask(a.id)).map((e) => `${e.from_state}>${e.to_state}:${e.reason}`)).toEqual([
      'WAITING>READY:met',
      'READY>RUNNING:leased',
      'RUNNING>RUNNING:cancel requested',
      'RUNNING>SUCCESS:completed',
    ]);
  });

  it('sets a scheduling mark only in its state, and drops it when the task leaves that state', async () => {
    const later = now + 60_000;
    const wf = wfRow();
    const [a, b] = ['a', 'b'].map((n) => taskRow(wf, n, { not_before: later }));
    await db.transaction(async (r) => {
      await r.workflows.insert(wf);
      await r.tasks.insert([a, b]);
      await r.transitions.tasks({ ids: [b.id], from: ['WAITING'], to: 'READY', set: { ready_at: now }, reason: 'met' });
      await r.tasks.holdUntilNotBefore([a.id, b.id]); // b is READY: not marked
    });
    const read = db.read();
    expect([(await read.tasks.get(a.id))!.wake_at, (await read.tasks.get(b.id))!.wake_at]).toEqual([later, null]);
    expect((await read.tasks.due(later, 10)).map((t) => t.id)).toContain(a.id);
    await db.transaction((r) => r.transitions.tasks({ ids: [a.id], from: ['WAITING'], to: 'CANCELLED', reason: 'x' }));
    expect((await read.tasks.get(a.id))!.wake_at).toBeNull();
    expect((await read.tasks.due(later, 10)).map((t) => t.id)).not.toContain(a.id);
  });

  it('locks, changes and deletes a workflow with everything it owns', async () => {
    const { wf, a } = await seed();
    await db.transaction(async (r) => {
      const locked = (await r.workflows.lock(wf.id))!;
      // c selects the tag web: read with the lock.
      expect(locked).toEqual({ ...wf, selects_tags: true });
      expect((await r.workflows.lockOfTasks([a.id])).map((w) => w.id)).toEqual([wf.id]);
      expect(
        await r.transitions.workflow(locked, { from: ['RUNNING'], flags: { sealed: true }, reason: 'sealed' }),
      ).toBe(true);
      expect(await r.transitions.workflow(locked, { from: ['RUNNING'], to: 'CANCELLED', reason: 'stop' })).toBe(true);
      expect(await r.transitions.workflow(locked, { from: ['RUNNING'], to: 'PAUSED', reason: 'too late' })).toBe(false);
      await r.data.write(wf.id, 'k', { v: 1 }, null, now);
      await r.data.write(wf.id, 'k', { v: 2 }, a.id, now + 1);
    });
    const r = db.read();
    expect(await r.workflows.get(wf.id)).toMatchObject({
      state: 'CANCELLED',
      sealed: true,
      finished_at: expect.any(Number),
    });
    expect((await r.events.ofWorkflow(wf.id)).map((e) => `${e.from_state}>${e.to_state}:${e.reason}`)).toEqual([
      'RUNNING>RUNNING:sealed',
      'RUNNING>CANCELLED:stop',
    ]);
    expect(await r.data.get(wf.id, 'k')).toMatchObject({ value: { v: 2 }, task_id: a.id, written_at: now + 1 });
    expect(await r.data.values(wf.id, ['k', 'missing'])).toEqual(new Map([['k', { v: 2 }]]));
    expect((await r.workflows.page({ namespace: 'default', limit: 500 })).some((w) => w.id === wf.id)).toBe(true);
    expect(
      (await r.workflows.page({ namespace: 'default', tag: 'team:ops', state: 'CANCELLED', limit: 500 })).map(
        (w) => w.id,
      ),
    ).toContain(wf.id);
    await db.transaction((tx) => tx.workflows.deleteWithEverything(wf.id));
    expect(await r.workflows.get(wf.id)).toBeNull();
    expect(await r.tasks.load([a.id])).toEqual([]);
    expect(await r.data.get(wf.id, 'k')).toBeNull();
  });

  it('tells with a lock whether any task of the workflow selects a tag', async () => {
    const wf = wfRow();
    const a = taskRow(wf, 'a', { tags: ['web'] });
    const b = taskRow(wf, 'b', { tags: ['web'], requires: ['a'], produces: ['k'] });
    await db.transaction(async (r) => {
      await r.workflows.insert(wf);
      await r.tasks.insert([a, b]);
      await r.deps.insertFor([a, b], [[], []]);
    });
    const selects = () => db.transaction(async (r) => (await r.workflows.lockOfTasks([a.id]))[0].selects_tags);
    expect(await selects()).toBe(false);
    const c = taskRow(wf, 'c', { requires_tags: ['web'] });
    await db.transaction(async (r) => {
      await r.tasks.insert([c]);
      await r.deps.insertFor([c], [[]]);
    });
    expect(await selects()).toBe(true);
  });

  (DATABASE === 'postgres' ? it : it.skip)(
    'on PostgreSQL, reads tasks sent behind their workflow lock as they are once the lock is held',
    async () => {
      const { wf, a } = await seed();
      let release = () => {};
      const gate = new Promise<void>((r) => (release = r));
      let changed = () => {};
      const holding = new Promise<void>((r) => (changed = r));
      // Another transaction holds the lock and changes the task; it commits once the read below waits.
      const holder = db.transaction(async (r) => {
        await r.workflows.lock(wf.id);
        await r.transitions.tasks({ ids: [a.id], from: ['WAITING'], to: 'READY', reason: 'by the holder' });
        changed();
        await gate;
      });
      await holding;
      const reader = db.transaction((r) => r.lockOfTasksWithTasks([a.id]));
      await waitFor('the reader to wait for the lock', async () => {
        const rows: { n: number }[] = await source.query(
          `SELECT COUNT(*)::int AS n FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND datname = current_database() AND query LIKE '%FOR UPDATE%'`,
        );
        return rows[0].n > 0;
      });
      release();
      await holder;
      const { workflows, tasks } = await reader;
      expect(workflows.map((w) => w.id)).toEqual([wf.id]);
      expect(tasks.map((t) => t.state)).toEqual(['READY']);
    },
  );

  (DATABASE === 'postgres' ? it : it.skip)(
    "on PostgreSQL, sends a transaction's COMMIT with its last statement: committed once it succeeds, rolled back when it fails, nothing after it",
    async () => {
      for (const preparedStatements of [false, true]) {
        const ownSource = createDataSource(await freshDatabaseUrl(), { preparedStatements });
        const own = new Database(ownSource);
        await own.initialize();
        // What the server tells each connection (a ROLLBACK sent behind a COMMIT would be
        // answered "there is no transaction in progress").
        const notices: string[] = [];
        const heard = new WeakSet<object>();
        type Notified = { on(event: 'notice', f: (n: { message: string }) => void): void };
        (ownSource.driver as unknown as { master: { on(e: 'acquire', f: (c: Notified) => void): void } }).master.on(
          'acquire',
          (client) => {
            if (heard.has(client)) return;
            heard.add(client);
            client.on('notice', (n) => notices.push(n.message));
          },
        );
        try {
          const wf = wfRow();
          const [a, b, c] = ['a', 'b', 'c'].map((n) => taskRow(wf, n));
          await own.transaction(async (r) => {
            await r.workflows.insert(wf);
            await r.tasks.insert([a, b, c]);
          });
          const stateOf = async (id: string) => (await own.read().tasks.get(id))?.state;
          const ready = (r: Repositories, t: TaskEntity, reason: string) =>
            r.transitions.tasks({ ids: [t.id], from: ['WAITING'], to: 'READY', reason });
          const job = (t: TaskEntity, attempt: unknown) => ({
            taskId: t.id,
            attempt: attempt as number,
            tagsetId: t.tagset_id,
            token: `tok-${t.name}`,
            workerId: null,
          });

          // A poll's claim, the last statement: others see it committed before the transaction's
          // function has returned (a COMMIT sent after the function would come only then).
          const leased = await own.transaction(async (r) => {
            await ready(r, a, 'met');
            const tasks = await r.transitions.claim([job(a, 1)], { last: true });
            await waitFor(
              `the claim committed (${preparedStatements})`,
              async () => (await stateOf(a.id)) === 'RUNNING',
              5000,
            );
            return tasks;
          });
          expect(leased.map((t) => [t.id, t.lease_token])).toEqual([[a.id, 'tok-a']]);
          expect((await own.read().events.ofTask(a.id)).map((e) => `${e.from_state}>${e.to_state}`)).toEqual([
            'WAITING>READY',
            'READY>RUNNING',
          ]);

          // The last statement fails (an attempt that is no number): the COMMIT sent with it
          // rolls back everything the transaction wrote, and its error is the one thrown.
          const failed = await own
            .transaction(async (r) => {
              await ready(r, b, 'by a transaction that fails');
              return r.transitions.claim([job(b, 'one')], { last: true });
            })
            .catch((e: unknown) => e);
          expect((failed as { code?: string }).code).toBe('22P02');
          expect(await stateOf(b.id)).toBe('WAITING');
          expect(await own.read().events.ofTask(b.id)).toEqual([]);
          // Nothing went behind that COMMIT.
          expect(notices).toEqual([]);

          // A statement after the last is refused; what went with the COMMIT stays, and the
          // error says it did.
          const after = await own
            .transaction(async (r) => {
              await ready(r, c, 'met');
              await r.events.flush({ last: true });
              return r.tasks.load([c.id]);
            })
            .catch((e: unknown) => e);
          expect(String(after)).toContain(
            "the transaction committed, but then: a statement after its transaction's last one",
          );
          expect((after as { committed?: boolean }).committed).toBe(true);
          expect(await stateOf(c.id)).toBe('READY');

          // A last statement node-postgres cannot send (a value that does not serialise): no
          // COMMIT goes with it, and what the transaction wrote before is rolled back.
          const d = taskRow(wf, 'd');
          await own.transaction((r) => r.tasks.insert([d]));
          const circular: Record<string, unknown> = {};
          circular.self = circular;
          const unsent = await own
            .transaction(async (r) => {
              await ready(r, d, 'by a transaction whose last statement is never sent');
              await r.events.flush();
              // The transaction's own connection, as every repository of it holds it.
              const { em } = r.tasks as unknown as { em: EntityManager };
              return query(em, 'UPDATE task SET input = $1 WHERE id = $2', [circular, d.id], { last: true });
            })
            .catch((e: unknown) => e);
          expect(String(unsent)).toContain('circular');
          expect(await stateOf(d.id)).toBe('WAITING');
        } finally {
          await own.close();
        }
      }
    },
  );

  (DATABASE === 'postgres' && process.env.TEST_PG_PREPARED === 'on' ? it : it.skip)(
    'on PostgreSQL with prepared statements, goes on after a migration changes a table its statements read',
    async () => {
      // One connection, so the statements prepared before the change are the ones run after it.
      const alone = createDataSource(await freshDatabaseUrl(), { preparedStatements: true });
      (alone.options as { extra: { max: number } }).extra.max = 1;
      const one = new Database(alone);
      await one.initialize();
      try {
        const wf = wfRow();
        const a = taskRow(wf, 'a');
        await one.transaction(async (r) => {
          await r.workflows.insert(wf);
          await r.tasks.insert([a]);
        });
        for (let i = 0; i < 6; i++) {
          expect((await one.read().tasks.load([a.id]))[0].id).toBe(a.id);
          expect((await one.transaction((r) => r.workflows.lock(wf.id)))?.id).toBe(wf.id);
        }
        // What a newer replica's migration does while this one serves.
        await alone.query('ALTER TABLE task ADD COLUMN added_by_a_migration integer');
        await alone.query('ALTER TABLE workflow ADD COLUMN added_by_a_migration integer');
        const named = statementName('SELECT 1 WHERE $1::int = 1', 1);
        // Outside a transaction: sent again, named anew.
        expect((await one.read().tasks.load([a.id]))[0].id).toBe(a.id);
        const renamed = statementName('SELECT 1 WHERE $1::int = 1', 1);
        expect(renamed).not.toBe(named);
        // In a transaction: refused as a conflict the engine runs again (every name new by then).
        expect((await one.transaction((r) => r.workflows.lock(wf.id)))?.id).toBe(wf.id);
        await alone.query('ALTER TABLE workflow DROP COLUMN added_by_a_migration');
        const refused = await one.transaction((r) => r.workflows.lock(wf.id)).catch((e: unknown) => e);
        expect((refused as { code?: string }).code).toBe('0A000');
        expect((await one.transaction((r) => r.workflows.lock(wf.id)))?.id).toBe(wf.id);
        const again = statementName('SELECT 1 WHERE $1::int = 1', 1);
        expect(again).not.toBe(renamed);
        // The server loses the statements (a session's reset, as a pooler may do): a read is
        // named anew and sent again, and transactions go on.
        expect((await one.read().tasks.load([a.id]))[0].id).toBe(a.id);
        await alone.query('DEALLOCATE ALL');
        expect((await one.read().tasks.load([a.id]))[0].id).toBe(a.id);
        expect(statementName('SELECT 1 WHERE $1::int = 1', 1)).not.toBe(again);
        expect((await one.transaction((r) => r.workflows.lock(wf.id)))?.id).toBe(wf.id);
      } finally {
        await one.close();
      }
    },
  );

  it("answers the engine's probes: states, handlers, failures, outputs, leases, data keys, and a changed spec", async () => {
    const { wf, a, b, c, p } = await seed();
    const h = taskRow(wf, 'c-fix', { kind: 'handler', parent_task_id: c.id, created_at: now + 5 });
    await db.transaction(async (r) => {
      await r.tasks.insert([h]);
      await r.deps.insertFor([h], [[]]);
      await r.transitions.tasks({ ids: [a.id], from: ['WAITING'], to: 'READY', reason: 'met' });
      await r.transitions.tasks({
        ids: [p.id],
        from: ['WAITING'],
        to: 'SKIPPED',
        set: { error: { code: 'DEPENDENCY_FAILED', message: 'x' } },
        reason: 'dead',
      });
      await r.transitions.tasks({
        ids: [c.id],
        from: ['WAITING'],
        to: 'ERROR',
        set: { error: { code: 'DEADLOCK', message: 'y' } },
        reason: 'stuck',
      });
      expect(
        await r.transitions.tasks({ ids: [c.id], from: ['ERROR'], flags: { handling: true }, reason: 'handlers' }),
      ).toEqual([c.id]);
      await r.data.write(wf.id, 'k', 'v', p.id, now);
    });
    const r = db.read();
    expect(await r.tasks.idsIn(wf.id, ['WAITING'])).toEqual([b.id, h.id]);
    expect(await r.tasks.anyIn(wf.id, ['READY'])).toBe(true);
    expect(await r.tasks.anyIn(wf.id, ['RUNNING'])).toBe(false);
    expect(await r.tasks.anyHandling(wf.id)).toBe(true);
    expect(await r.tasks.anyUnhandledFailure(wf.id)).toBe(true);
    expect((await r.tasks.handlersOf(c.id, now)).map((t) => t.name)).toEqual(['c-fix']);
    expect((await r.tasks.allOf(wf.id)).map((t) => t.name)).toEqual(['a', 'b', 'c', 'p', 'c-fix']);
    expect(await r.tasks.outputs(wf.id, ['p'])).toEqual([
      { id: p.id, name: 'p', state: 'SKIPPED', output: { n: 1 }, finished_at: expect.any(Number) },
    ]);
    expect(await r.tasks.succeeded(wf.id)).toEqual([]);
    expect(await r.leases.holder(wf.id, 'no-such-lease', now)).toBeNull();
    expect([...(await r.data.written(wf.id, ['k', 'z']))]).toEqual(['k']);
    expect(await r.data.keys(wf.id)).toEqual([{ key: 'k', written_at: now, task_id: p.id }]);
    await db.transaction(async (tx) => {
      await tx.tasks.updateSpec(b.id, { tags: ['db'], requires: [], requires_tags: ['web'] }, now + 9);
      const [changed] = await tx.tasks.load([b.id]);
      expect(changed).toMatchObject({ tags: ['db'], requires: [], requires_tags: ['web'], updated_at: now + 9 });
      await tx.deps.replaceFor(changed, ['b-fix']);
    });
    expect(await r.deps.requiringName(wf.id, 'a')).toEqual([]);
    expect((await r.tasks.viewsByTag(wf.id, ['db'])).get('db')?.map((v) => v.name)).toEqual(['b']);
    expect(await r.deps.reserved(wf.id, ['b-fix'])).toEqual([{ name: 'b-fix', owner_task_id: b.id }]);
    await db.transaction((tx) => tx.deps.deleteFor(b.id));
    expect(await r.deps.reserved(wf.id, ['b-fix'])).toEqual([]);
  });

  it('finds overdue leases, READY tasks to queue again, and workers with their running tasks', async () => {
    const wf = wfRow();
    const late = taskRow(wf, 'late', { state: 'RUNNING', lease_expires_at: now - 1, worker_id: null });
    const ready = taskRow(wf, 'ready', { state: 'READY', ready_at: now - 10_000 });
    const worker = {
      id: newId(now),
      name: 'w1',
      namespace: 'default',
      tags: ['web'],
      hostname: null,
      version: null,
      created_at: now,
      last_seen_at: now,
      stopping_at: null,
      key_id: 'key-1',
    };
    await db.transaction(async (r) => {
      await r.workflows.insert(wf);
      await r.tasks.insert([{ ...late, worker_id: worker.id }, ready]);
      await r.workers.insert(worker);
    });
    const r = db.read();
    expect((await r.leases.overdue(now, 1000)).map((t) => t.id)).toContain(late.id);
    const page = await r.tasks.readyPage({ ready_at: -1, id: '' }, 1000, now - 5000);
    expect(page.find((t) => t.id === ready.id)).toMatchObject({ attempt: 1, tagset_id: ready.tagset_id, tags: [] });
    expect((await r.leases.runningBy([worker.id])).get(worker.id)).toEqual([late.id]);
    expect(await db.transaction((tx) => tx.workers.touch(worker.id, 'default', 'key-1', now + 5))).toBe('ok');
    expect(await db.transaction((tx) => tx.workers.touch(worker.id, 'default', 'key-2', now + 5))).toBe('unknown');
    expect(await db.transaction((tx) => tx.workers.touch(worker.id, 'default', null, now + 5))).toBe('unknown');
    expect(await db.transaction((tx) => tx.workers.touch(worker.id, 'other', 'key-1', now + 9))).toBe('unknown');
    expect(await db.transaction((tx) => tx.workers.touch(newId(now), 'default', 'key-1', now))).toBe('unknown');
    expect((await r.workers.get(worker.id, 'default'))?.last_seen_at).toBe(now + 5);
    await db.transaction((tx) => tx.workers.markStopping(worker.id, now + 6));
    expect(await db.transaction((tx) => tx.workers.touch(worker.id, 'default', 'key-1', now + 7))).toBe('stopping');
    expect(await r.workers.get(worker.id, 'default')).toMatchObject({ last_seen_at: now + 5, stopping_at: now + 6 });
    expect(await r.workers.get(worker.id, 'other')).toBeNull();
  });
});
