import { describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { MIGRATIONS } from '@tagflow/persistence';
import { Api, DATABASE, freshDatabaseUrl, shortId, task, waitForWorkflow, workflow } from './support/harness.js';

/**
 * Replicas that start together on a database nobody has migrated yet, as a deployment of
 * several replicas does on its first day (or an upgrade that brings new migrations): one of
 * them migrates while the others wait, then all of them serve. PostgreSQL only
 * (scripts/test.sh): SQLite serves one API process.
 */
describe('API replicas starting at the same moment', () => {
  it('on a fresh PostgreSQL database: all three become healthy, the migrations ran once, and they serve together', async () => {
    if (DATABASE !== 'postgres') throw new Error('the startup suite needs TEST_DATABASE=postgres');
    const databaseUrl = await freshDatabaseUrl({ migrated: false });
    const prefix = `t${shortId()}`;
    const started = await Promise.allSettled([1, 2, 3].map(() => Api.start({ databaseUrl, prefix })));
    const apis = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    try {
      const failed = started.flatMap((s) => (s.status === 'rejected' ? [String(s.reason).slice(0, 2000)] : []));
      expect(failed).toEqual([]);
      for (const api of apis) expect((await api.get('/health')).status).toBe(200);

      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect();
      try {
        const { rows } = await db.query<{ name: string; n: number }>(
          'SELECT name, COUNT(*)::int AS n FROM migrations GROUP BY name ORDER BY name',
        );
        expect(rows.filter((r) => r.n !== 1)).toEqual([]);
        expect(rows.map((r) => r.name).sort()).toEqual(MIGRATIONS.map((m) => m.name).sort());
      } finally {
        await db.end();
      }

      // Work made through one replica is leased through another and finished through the third.
      const [a, b, c] = apis;
      const tag = `startup-${shortId()}`;
      const wf = await a.createWorkflow(workflow({ sealed: true, tasks: [task('first', { tags: [tag] })] }));
      const leased = await b.take([tag]);
      expect((await c.complete(leased)).status).toBe(200);
      expect((await waitForWorkflow(a, wf.id, ['SUCCESS', 'ERROR'])).state).toBe('SUCCESS');
    } finally {
      await Promise.all(apis.map((api) => api.stop()));
    }
  }, 90_000);
});
