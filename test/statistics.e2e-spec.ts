import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { Api, DATABASE, freshDatabaseUrl, shortId, task, waitFor, workflow } from './support/harness.js';

/**
 * PostgreSQL plans a statement by its statistics, which autovacuum refreshes a minute late at
 * best. Until then a workflow that has just received thousands of tasks looks empty to the
 * planner, and each lookup by name walked all of its tasks (through the index on workflow and
 * state) instead of probing the unique key: an accept that slowed with the square of the
 * workflow. The API refreshes them itself as the task tables double (PlannerStatistics).
 * PostgreSQL only (scripts/test.sh); `npm test` runs it directly and through PgBouncer.
 */
describe('planner statistics of a growing workflow', () => {
  let api: Api;
  let db: pg.Client;
  beforeAll(async () => {
    if (DATABASE !== 'postgres') throw new Error('the statistics suite needs TEST_DATABASE=postgres');
    api = await Api.start();
    db = new pg.Client({ connectionString: api.databaseUrl });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await api?.stop();
  });

  const analyses = async () => {
    const { rows } = await db.query<{ relname: string; n: string }>(
      `SELECT relname, analyze_count AS n FROM pg_stat_user_tables WHERE relname IN ('task', 'task_tag')`,
    );
    return Object.fromEntries(rows.map((r) => [r.relname, Number(r.n)]));
  };

  it('are refreshed as thousands of tasks arrive, so the planner knows how many a workflow holds', async () => {
    expect(await analyses()).toEqual({ task: 0, task_tag: 0 });
    const wf = await api.createWorkflow(workflow());
    for (let b = 0; b < 3; b++) {
      const tasks = Array.from({ length: 1000 }, (_, i) => task(`b${b}-${i}`));
      expect((await api.post(`/v1/workflows/${wf.id}/tasks`, { tasks })).status).toBe(201);
    }
    // analyze_count counts ANALYZE statements only, not autovacuum's (autoanalyze_count).
    await waitFor(
      'the API to analyse the task tables',
      async () => {
        const n = await analyses();
        return n.task >= 1 && n.task_tag >= 1;
      },
      20_000,
    );
    // What the planner now expects a lookup by workflow to meet: at least the first batch's
    // 1,000 tasks, analysed once that batch committed (later batches within the second are
    // left to a later commit). It guessed 0.5 % of the table, 15 rows, before. Waited for:
    // the count above moves when ANALYZE ends, the statistics when its transaction commits.
    await waitFor('the planner to expect the first batch at least', async () => {
      const { rows } = await db.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
        'EXPLAIN (FORMAT JSON) SELECT id FROM task WHERE workflow_id = $1',
        [wf.id],
      );
      const expected = rows[0]['QUERY PLAN'][0].Plan['Plan Rows'];
      if (expected < 1000) throw new Error(`it expects ${expected} rows`);
      return true;
    });
    // And the tasks are all there, each once.
    expect((await api.get(`/v1/workflows/${wf.id}`)).body.task_counts).toMatchObject({ READY: 3000 });
  });

  it('are left to autovacuum, and the log says so once, when the role may not analyse the tables', async () => {
    // A role granted every table of a database it does not own: PostgreSQL skips its ANALYZE
    // with a warning and no error, so the API has to ask first.
    const url = new URL(await freshDatabaseUrl());
    const direct = new URL(process.env.TEST_PG_DIRECT_URL ?? url.toString());
    direct.pathname = url.pathname;
    const role = `tf_guest_${shortId()}`;
    const admin = new pg.Client({ connectionString: direct.toString() });
    await admin.connect();
    let guest: Api | undefined;
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN`);
      await admin.query(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${role}`);
      await admin.query(`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ${role}`);
      direct.username = role;
      guest = await Api.start({ databaseUrl: direct.toString() });
      const wf = await guest.createWorkflow(workflow());
      for (let b = 0; b < 2; b++) {
        const tasks = Array.from({ length: 1000 }, (_, i) => task(`b${b}-${i}`));
        expect((await guest.post(`/v1/workflows/${wf.id}/tasks`, { tasks })).status).toBe(201);
      }
      await waitFor('the warning', async () => guest!.logs.join('').includes('may not ANALYZE'));
      // The log is kept as the chunks the process wrote, which may hold several lines.
      const warned = guest.logs
        .join('')
        .split('\n')
        .filter((l) => l.includes('may not ANALYZE'));
      expect(warned).toHaveLength(1);
      expect(warned[0]).toContain('task, task_dep, task_tag');
      expect(JSON.parse(warned[0])).toMatchObject({ level: 'warn' });
    } finally {
      await guest?.stop();
      await admin.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      await admin.end();
    }
  });
});
