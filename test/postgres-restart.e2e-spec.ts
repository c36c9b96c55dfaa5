import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api, DATABASE, waitFor, waitForWorkflow, workflow } from './support/harness.js';
import { WorkerProcess } from './support/worker-process.js';

const services = (fn: string, ...args: string[]) =>
  execFileSync('bash', ['-c', `. scripts/lib/services.sh; ${fn} "$@"`, fn, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();

/** A PostgreSQL cluster of this suite's own, so it can be restarted (scripts/lib/services.sh). */
class OwnPostgres {
  private constructor(
    readonly dir: string,
    readonly url: string,
  ) {}

  static start(): OwnPostgres {
    const dir = mkdtempSync(join(tmpdir(), 'tagflow-pg-'));
    chmodSync(dir, 0o755); // the server runs as the postgres user
    return new OwnPostgres(dir, services('start_postgres', join(dir, 'pg')));
  }

  get port(): string {
    return new URL(this.url).port;
  }

  /** Stops the server, ending every connection (`pg_ctl stop -m fast`, as for a restart). */
  down(): void {
    execFileSync(
      'bash',
      [
        '-c',
        `. scripts/lib/services.sh; as_pg "$(pg_bindir)/pg_ctl" -D "$1/data" -m fast -w stop`,
        '_',
        join(this.dir, 'pg'),
      ],
      { stdio: 'ignore' },
    );
  }

  up(): void {
    services('postgres_up', join(this.dir, 'pg'), this.port);
  }

  stop(): void {
    services('stop_postgres', join(this.dir, 'pg'));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * PostgreSQL restarted while workers run a workflow (SQLite is embedded in the API:
 * scripts/test.sh runs this suite on PostgreSQL only).
 */
describe('PostgreSQL restarted under load', () => {
  let pg: OwnPostgres;
  let api: Api;
  const workers: WorkerProcess[] = [];
  beforeAll(async () => {
    if (DATABASE !== 'postgres')
      throw new Error('this suite restarts its own PostgreSQL: it needs TEST_DATABASE=postgres');
    pg = OwnPostgres.start();
    api = await Api.start({ databaseUrl: pg.url });
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await api?.stop();
    pg?.stop();
  });

  it('answers 503 with Retry-After while it is away, and every task succeeds exactly once', async () => {
    const t = `pg-restart-${Date.now()}`;
    const n = 400;
    // One retry, as an operator would give work that may meet an outage: a claim the database
    // commits as it goes down reaches no worker, and its lease runs out (30 s) as a failed attempt.
    const tasks = Array.from({ length: n }, (_, i) => ({
      name: `t${i}`,
      tags: [t],
      retry: { count: 1 },
      action: { type: 'shell', command: 'sleep 0.1' },
    }));
    const wf = await api.createWorkflow(workflow({ sealed: true, tasks }));
    for (const name of ['w1', 'w2'])
      workers.push(
        await WorkerProcess.start({ api: api.url, tags: [t], name, concurrency: 8, args: ['--log-level', 'debug'] }),
      );
    await waitFor(
      'a quarter of the tasks to succeed',
      async () => ((await api.get(`/v1/workflows/${wf.id}`)).body.task_counts.SUCCESS ?? 0) >= n / 4,
      60_000,
    );

    const downAt = Date.now();
    pg.down();
    try {
      await waitFor(
        'health to name the database',
        async () => (await api.get('/health')).body?.database !== 'ok',
        10_000,
      );
      expect((await api.get('/health')).body).toMatchObject({ status: 'unavailable', redis: 'ok' });
      const started = Date.now();
      const refused = await fetch(`${api.url}/v1/workflows`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(workflow()),
      });
      const ms = Date.now() - started;
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
      expect(((await refused.json()) as { message: string }).message).toContain('database is unavailable');
      expect(ms).toBeLessThan(7000); // the pool's connect timeout is 5 s
      console.log(`PostgreSQL down: POST /v1/workflows answered 503 in ${ms} ms`);
      await new Promise((r) => setTimeout(r, Math.max(0, 3000 - (Date.now() - downAt)))); // down for at least 3 s, as a restart is
    } finally {
      pg.up();
    }
    const outageMs = Date.now() - downAt;

    const ended = await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'], 120_000);
    if (ended.state !== 'SUCCESS') {
      // What failed, and how: printed before the assertion says only that something did.
      for (const t of (await api.get(`/v1/workflows/${wf.id}/tasks?state=ERROR&limit=20`)).body.items) {
        const events = (await api.get(`/v1/tasks/${t.id}/events`)).body.map(
          (e: { from: string; to: string; reason: string }) => `${e.from}>${e.to} ${e.reason}`,
        );
        console.log(`task ${t.name} attempt ${t.attempt}: ${JSON.stringify(t.error)}; ${events.join(' | ')}`);
      }
    }
    expect(ended.state).toBe('SUCCESS');
    expect(ended.task_counts).toMatchObject({ SUCCESS: n });
    // Exactly one success per task, whatever the outage did to reports in flight.
    const page = (await api.get(`/v1/workflows/${wf.id}/tasks?limit=500`)).body.items as {
      id: string;
      attempt: number;
    }[];
    expect(page).toHaveLength(n);
    let again = 0;
    for (const task of page) {
      const events = (await api.get(`/v1/tasks/${task.id}/events`)).body as { to: string }[];
      expect(events.filter((e) => e.to === 'SUCCESS')).toHaveLength(1);
      if (task.attempt > 1) again++;
    }
    // The workers met the outage and went on: calls they sent again (logged at debug level).
    const retried = workers.reduce((k, w) => k + (w.output.match(/"msg":"retrying a call"/g)?.length ?? 0), 0);
    expect(retried).toBeGreaterThan(0);
    console.log(
      `PostgreSQL restarted (${outageMs} ms away) under ${n} tasks: all succeeded once; ${again} ran a second attempt; the workers sent ${retried} calls again; workflow took ${Date.parse(ended.finished_at) - Date.parse(ended.created_at)} ms`,
    );
  }, 180_000);
});
