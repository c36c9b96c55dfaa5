import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { TagflowApiError, TagflowClient, TagflowNetworkError } from '@tagflow/client';
import { Api, freePort, task, track, waitFor, workflow } from './support/harness.js';
import { WorkerProcess } from './support/worker-process.js';

/** The typed client against the real API, and the worker's command line. */
describe('the typed client', () => {
  let api: Api;
  let client: TagflowClient;
  beforeAll(async () => {
    api = await Api.start({ env: { PORT: String(await freePort()) } });
    client = new TagflowClient({ url: api.url });
  });
  afterAll(async () => {
    await api?.stop();
  });

  it('round-trips workflows and tasks with typed answers', async () => {
    const wf = await client.createWorkflow({
      name: 'typed',
      tasks: [{ name: 'a', action: { type: 'noop' }, tags: ['never-polled'] }],
    });
    expect(wf.state).toBe('RUNNING');
    const [b] = await client.addTasks(wf.id, [
      { name: 'b', action: { type: 'noop' }, tags: ['never-polled'], requires: ['a'] },
    ]);
    expect(b.state).toBe('WAITING');
    expect((await client.getTaskInWorkflow(wf.id, 'b')).id).toBe(b.id);
    expect((await client.listTasks(wf.id, { state: 'READY' })).items.map((t) => t.name)).toEqual(['a']);
    expect((await client.sealWorkflow(wf.id)).sealed).toBe(true);
  });

  it('reports finished tasks and polls for the next in one call, each report with its own result', async () => {
    const t = `rp-${Date.now()}`;
    const wf = await client.createWorkflow({
      name: 'batched',
      sealed: true,
      tasks: [
        { name: 'x', tags: [t], action: { type: 'noop' } },
        { name: 'y', tags: [t], action: { type: 'noop' }, requires: ['x'] },
      ],
    });
    const [x] = await client.poll({ tags: [t], wait_s: 5 });
    const { results, tasks } = await client.report(
      [
        { task_id: x.id, lease_token: x.lease.token, status: 'complete', output: { built: true } },
        {
          task_id: '00000000-0000-4000-8000-000000000000',
          lease_token: 'stale',
          status: 'fail',
          error: { message: 'late' },
        },
      ],
      { tags: [t], wait_s: 5 },
    );
    expect(results).toEqual([
      { task_id: x.id, status: 200 },
      {
        task_id: '00000000-0000-4000-8000-000000000000',
        status: 404,
        code: 'TASK_NOT_FOUND',
        message: expect.stringContaining('not found'),
      },
    ]);
    // y was released by x's report and handed to the poll of the same call.
    expect(tasks.map((n) => n.name)).toEqual(['y']);
    const done = await client.report([{ task_id: tasks[0].id, lease_token: tasks[0].lease.token, status: 'complete' }]);
    expect(done).toEqual({ results: [{ task_id: tasks[0].id, status: 200 }], tasks: [] });
    expect((await client.getWorkflow(wf.id)).state).toBe('SUCCESS');
  });

  it("raises TagflowApiError with the status and the API's message", async () => {
    const err = await client.getWorkflow('00000000-0000-4000-8000-000000000000').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TagflowApiError);
    expect((err as TagflowApiError).status).toBe(404);
    expect((err as TagflowApiError).message).toContain('not found');
    const bad = await client.createWorkflow({ name: 'x y' }).catch((e: unknown) => e);
    expect((bad as TagflowApiError).status).toBe(400);
    expect((bad as TagflowApiError).details).toEqual([
      { field: 'name', errors: [expect.stringContaining('must match')] },
    ]);
  });

  it('raises TagflowNetworkError when nothing listens, after its retries', async () => {
    const offline = new TagflowClient({
      url: `http://127.0.0.1:${await freePort()}`,
      retry: { attempts: 2, baseMs: 10, maxMs: 20 },
    });
    const err = await offline.getWorkflow('00000000-0000-4000-8000-000000000000').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TagflowNetworkError);
    expect((err as TagflowNetworkError).notSent).toBe(true);
  });

  it('retries through an API restart', async () => {
    const retries: number[] = [];
    const patient = new TagflowClient({
      url: api.url,
      retry: { attempts: 40, baseMs: 100, maxMs: 400 },
      onRetry: (r) => retries.push(r.attempt),
    });
    const wf = await patient.createWorkflow(workflow());
    await api.stop();
    const pending = patient.getWorkflow(wf.id); // the API is down now
    api = await Api.start({ databaseUrl: api.databaseUrl, prefix: api.prefix, env: { PORT: new URL(api.url).port } });
    expect((await pending).id).toBe(wf.id);
    expect(retries.length).toBeGreaterThan(0);
  });

  it('hands one task over and waits for its result (runTask)', async () => {
    const t = `rt-${Date.now()}`;
    const w = await WorkerProcess.start({ api: api.url, tags: [t] });
    try {
      const done = await client.runTask(
        { tags: [t], action: { type: 'shell', command: 'echo "{\\"sum\\": $((2+3))}" > $TAGFLOW_OUTPUT' } },
        { timeoutS: 30 },
      );
      expect(done).toMatchObject({ state: 'SUCCESS', output: { sum: 5 } });
    } finally {
      await w.stop();
    }
  });
});

describe('the worker command line', () => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = track(
        spawn(process.execPath, ['bin/tagflow-worker.js', ...args], { env: { PATH: process.env.PATH ?? '' } }),
      );
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      p.stderr.on('data', (c: Buffer) => (out += c.toString()));
      p.on('exit', (code) => resolve({ code, out }));
    });

  it('prints its usage', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('--concurrency N');
  });

  it('refuses bad flags, naming them', async () => {
    expect((await run(['--concurrency', 'lots'])).out).toContain(
      '--concurrency / TAGFLOW_CONCURRENCY must be a whole number',
    );
    expect((await run(['--tags', 'ok,not ok'])).out).toContain('"not ok" is not a tag');
    expect((await run(['--api', 'ftp://x'])).code).toBe(2);
  });

  it('exits at once on a second signal', async () => {
    const api = await Api.start();
    const t = `sig-${Date.now()}`;
    const w = await WorkerProcess.start({ api: api.url, tags: [t], graceS: 60 });
    try {
      const wf = await api.createWorkflow(
        workflow({ tasks: [task('long', { tags: [t], action: { type: 'shell', command: 'sleep 60' } })] }),
      );
      await waitFor('the task to run', async () => (await api.task(wf.id, 'long')).state === 'RUNNING');
      w.signal('SIGTERM');
      await waitFor('the worker to start stopping', async () => w.output.includes('waiting for running tasks'));
      const started = Date.now();
      w.signal('SIGTERM');
      expect(await w.exit()).toBe(130);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await w.stop();
      await api.stop();
    }
  });
});
