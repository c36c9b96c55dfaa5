import { afterAll, describe, expect, it } from '@jest/globals';
import { Api, DATABASE, shortId, task, waitForWorkflow, workflow } from './support/harness.js';

/**
 * A release larger than the evaluation budget is finished in steps by the reconciler (a
 * continuation). A second release during or after it, through the same replica or
 * another, must not lose the evaluations it leaves for later: the workflow, whose tasks
 * all succeed, ends SUCCESS, never with a task failed as deadlocked.
 *
 * The shape (from a production report): roots r1, r2 and z; dependents d* requiring
 * [r1, r2]; fillers f* requiring z. The dependents come first, so the continuation's walk
 * (in id order, which is creation order) passes them before it ends.
 */
describe('large releases continued in steps', () => {
  const apis: Api[] = [];
  afterAll(async () => {
    await Promise.all(apis.map((a) => a.stop()));
  });

  /** `n` API replicas on one database and one Redis (more than one: PostgreSQL only). */
  async function replicas(n: number, env: Record<string, string>): Promise<Api[]> {
    const first = await Api.start({ env });
    const rest = [];
    for (let i = 1; i < n; i++)
      rest.push(await Api.start({ databaseUrl: first.databaseUrl, prefix: first.prefix, env }));
    apis.push(first, ...rest);
    return [first, ...rest];
  }

  async function recipe(
    rs: Api[],
    shape: { dependents: number; fillers: number; secondAfterMs: number },
  ): Promise<void> {
    const [a, b] = [rs[0], rs[rs.length - 1]];
    const t = `st-${shortId()}`;
    const wf = await a.createWorkflow(workflow());
    const specs = [
      task('r1', { tags: [`${t}-r`] }),
      task('r2', { tags: [`${t}-r`] }),
      task('z', { tags: [`${t}-z`] }),
      ...Array.from({ length: shape.dependents }, (_, i) =>
        task(`d${i}`, { tags: [`${t}-d`], requires: ['r1', 'r2'] }),
      ),
      ...Array.from({ length: shape.fillers }, (_, i) => task(`f${i}`, { tags: [`${t}-f`], requires: ['z'] })),
    ];
    for (let i = 0; i < specs.length; i += 1000) {
      const r = await a.post(`/v1/workflows/${wf.id}/tasks`, { tasks: specs.slice(i, i + 1000) });
      expect(r.status).toBe(201);
    }
    expect((await a.post(`/v1/workflows/${wf.id}/seal`)).status).toBe(200);

    const roots = await a.poll([`${t}-r`], { max_tasks: 2, wait_s: 5 });
    expect(roots.map((x) => x.name).sort()).toEqual(['r1', 'r2']);
    const [r1, r2] = ['r1', 'r2'].map((n) => roots.find((x) => x.name === n)!);
    expect((await a.complete(r1)).status).toBe(200);
    // The continuation of r1's release is under way (or done) when r2 is released elsewhere.
    await new Promise((r) => setTimeout(r, shape.secondAfterMs));
    expect((await b.complete(r2)).status).toBe(200);

    // Every dependent is released: they all come, through either replica.
    const dependents = await drain(rs, [`${t}-d`], shape.dependents, 60_000);
    expect(dependents).toBe(shape.dependents);
    // z last, then the fillers; the workflow ends.
    await drain(rs, [`${t}-z`], 1, 10_000);
    await drain(rs, [`${t}-f`], shape.fillers, 60_000);
    const done = await waitForWorkflow(a, wf.id, ['SUCCESS', 'ERROR'], 30_000);
    expect(done.task_counts).toMatchObject({ ERROR: 0, SUCCESS: specs.length });
    expect(done.state).toBe('SUCCESS');
  }

  it('one API, evaluation budget 20: no false DEADLOCK when the second root completes mid-continuation', async () => {
    const rs = await replicas(1, { EVALUATION_BUDGET: '20' });
    await recipe(rs, { dependents: 25, fillers: 200, secondAfterMs: 700 });
  });

  // Two API processes on one SQLite file are not a supported setup.
  if (DATABASE === 'postgres')
    it('two replicas, evaluation budget 20: no false DEADLOCK when the second root completes on the other replica', async () => {
      const rs = await replicas(2, { EVALUATION_BUDGET: '20' });
      await recipe(rs, { dependents: 25, fillers: 200, secondAfterMs: 700 });
    });

  // At the real budget: more dependents than one evaluation takes (two steps on SQLite; three
  // on PostgreSQL, where three replicas settle them, as a scaled-out deployment does).
  if (DATABASE === 'postgres')
    it('at the real budget (5,000): a fan-out of 12,000 dependents released by two roots on three replicas', async () => {
      const rs = await replicas(3, {});
      await recipe(rs, { dependents: 12_000, fillers: 500, secondAfterMs: 300 });
    }, 300_000);
  else
    it('at the real budget (5,000): 5,500 dependents released by two roots on one API', async () => {
      const rs = await replicas(1, {});
      await recipe(rs, { dependents: 5500, fillers: 500, secondAfterMs: 300 });
    }, 240_000);
});

/**
 * Takes and completes tasks of `tags` through the replicas in turn (reports and the next
 * poll in one request) until `expected` were completed, or no task came for a while.
 * Returns: how many were completed.
 */
async function drain(rs: Api[], tags: string[], expected: number, timeoutMs: number): Promise<number> {
  let done = 0;
  let reports: { task_id: string; lease_token: string; status: 'complete' }[] = [];
  let idle = 0;
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; done < expected && idle < 5 && Date.now() < deadline; i++) {
    const r = await rs[i % rs.length].post('/v1/tasks/report', { reports, poll: { tags, max_tasks: 100, wait_s: 1 } });
    if (r.status !== 200) throw new Error(`report: ${r.status} ${JSON.stringify(r.body)}`);
    done += reports.length;
    reports = r.body.tasks.map((x: { id: string; lease: { token: string } }) => ({
      task_id: x.id,
      lease_token: x.lease.token,
      status: 'complete' as const,
    }));
    idle = reports.length === 0 ? idle + 1 : 0;
  }
  if (reports.length > 0) {
    const r = await rs[0].post('/v1/tasks/report', { reports });
    expect(r.body.results.every((x: { status: number }) => x.status === 200)).toBe(true);
    done += reports.length;
  }
  return done;
}
