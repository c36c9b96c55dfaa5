import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { TagflowClient, type LogChunk, type LogEnd, type WorkflowStreamEvent } from '@tagflow/client';
import { Api, DATABASE, readStream, task, waitFor, waitForTask, waitForWorkflow, workflow } from './support/harness.js';
import { WorkerProcess } from './support/worker-process.js';

const uniq = () => Math.random().toString(36).slice(2, 10);
const sh = (command: string, extra: Record<string, unknown> = {}) => ({ action: { type: 'shell', command }, ...extra });

/** Samples of `tagflow_http_requests_total` for one method and route, summed over statuses. */
async function requestsTo(api: Api, method: string, route: string): Promise<number> {
  const text = String((await api.get<string>('/metrics')).body);
  let n = 0;
  for (const line of text.split('\n')) {
    if (
      line.startsWith('tagflow_http_requests_total{') &&
      line.includes(`method="${method}"`) &&
      line.includes(`route="${route}"`)
    )
      n += Number(line.split(' ').pop());
  }
  return n;
}

/**
 * Watching work as it happens, with the real worker: its output arrives while the task
 * runs, a workflow's transitions stream as they happen, and the worker speaks the second
 * edition of the protocol (reports riding on polls, one heartbeat per worker).
 */
describe('live output and event streams', () => {
  let api: Api;
  let worker: WorkerProcess;
  let client: TagflowClient;
  const tag = `live-${uniq()}`;
  beforeAll(async () => {
    api = await Api.start({ env: { STREAMS_PER_CREDENTIAL: '3' } });
    worker = await WorkerProcess.start({ api: api.url, tags: [tag], concurrency: 4, name: 'live-worker' });
    client = new TagflowClient({ url: api.url });
  });
  afterAll(async () => {
    await worker?.stop();
    await api?.stop();
  });

  it("streams a running task's output as it is written, then ends with the task's state", async () => {
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        // Waits for a file the test writes once it has seen the first line: the output must arrive while the task runs.
        tasks: [
          task('deploy', {
            tags: [tag],
            lease_s: 5,
            ...sh(
              'echo "step 1: stopping"; while [ ! -e "$TAGFLOW_INPUT.go" ]; do sleep 0.1; done; echo "step 2: started" >&2; sleep 0.5; echo done',
            ),
          }),
        ],
      }),
    );
    const t = await waitForTask(api, wf.id, 'deploy', ['RUNNING']);
    const seen: (LogChunk | LogEnd)[] = [];
    let stateAtFirstLine = '';
    for await (const item of client.followTaskLogs(t.id)) {
      seen.push(item);
      if (item.type === 'chunk' && item.text.includes('step 1') && !stateAtFirstLine) {
        stateAtFirstLine = (await api.get(`/v1/tasks/${t.id}`)).body.state;
        // Let the task go on: it waits for this file next to its input.
        touchGoFile(worker, t.id);
      }
    }
    expect(stateAtFirstLine).toBe('RUNNING');
    const chunks = seen.filter((s): s is LogChunk => s.type === 'chunk');
    expect(
      chunks
        .filter((c) => c.stream === 'stdout')
        .map((c) => c.text)
        .join(''),
    ).toBe('step 1: stopping\ndone\n');
    expect(
      chunks
        .filter((c) => c.stream === 'stderr')
        .map((c) => c.text)
        .join(''),
    ).toBe('step 2: started\n');
    expect(seen[seen.length - 1]).toEqual({ type: 'end', attempt: 1, state: 'SUCCESS' });
    // Read afterwards: the kept text, both streams in the order written, or one of them.
    expect(await client.taskLogs(t.id)).toBe('step 1: stopping\nstep 2: started\ndone\n');
    expect(await client.taskLogs(t.id, { stream: 'stderr' })).toBe('step 2: started\n');
    // Resuming after the first piece gives only what came after it.
    const res = await fetch(`${api.url}/v1/tasks/${t.id}/logs?follow=1`, {
      headers: { 'last-event-id': String(chunks[0].seq) },
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const again = await readStream(res);
    expect(
      again
        .filter((e) => e.event !== 'end')
        .map((e) => JSON.parse(e.data) as string)
        .join(''),
    ).toBe('step 2: started\ndone\n');
    expect(again[again.length - 1]).toMatchObject({ event: 'end' });
  }, 60_000);

  it("keeps each attempt's output apart, and shows a task that streamed nothing from its report", async () => {
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('flaky', {
            tags: [tag],
            retry: { count: 1, delay_s: 0 },
            ...sh('echo "attempt $TAGFLOW_ATTEMPT"; [ "$TAGFLOW_ATTEMPT" = 2 ]'),
          }),
        ],
      }),
    );
    await waitForWorkflow(api, wf.id, ['SUCCESS'], 20_000);
    const t = await api.task(wf.id, 'flaky');
    expect(await client.taskLogs(t.id, { attempt: 1 })).toBe('attempt 1\n');
    expect(await client.taskLogs(t.id)).toBe('attempt 2\n');
    expect((await api.get(`/v1/tasks/${t.id}/logs?attempt=3`)).status).toBe(404);

    // A task reported by hand (no live output) is shown from its report.
    const other = `hand-${uniq()}`;
    const wf2 = await api.createWorkflow(workflow({ sealed: true, tasks: [task('by-hand', { tags: [other] })] }));
    const leased = await api.take([other]);
    expect((await api.complete(leased, {}, { stdout: 'from the report\n' })).status).toBe(200);
    await waitForWorkflow(api, wf2.id, ['SUCCESS']);
    expect(await client.taskLogs(leased.id)).toBe('from the report\n');
    const stream = await readStream(await fetch(`${api.url}/v1/tasks/${leased.id}/logs?follow=1`));
    expect(stream.map((e) => e.event)).toEqual(['stdout', 'end']);
  }, 60_000);

  it('refuses output from anyone but the current lease, and bounds it', async () => {
    const other = `bounds-${uniq()}`;
    await api.createWorkflow(workflow({ sealed: true, tasks: [task('writer', { tags: [other], lease_s: 60 })] }));
    const leased = await api.take([other]);
    const append = (body: object) => api.post(`/v1/tasks/${leased.id}/logs`, body);
    expect(await append({ lease_token: 'not-the-lease', stream: 'stdout', data: 'x' })).toMatchObject({ status: 409 });
    expect(
      (
        await api.post(`/v1/tasks/00000000-0000-4000-8000-000000000000/logs`, {
          lease_token: leased.lease.token,
          stream: 'stdout',
          data: 'x',
        })
      ).status,
    ).toBe(404);
    const wrongStream = await append({ lease_token: leased.lease.token, stream: 'stdin', data: 'x' });
    expect(wrongStream.status).toBe(400);
    expect(JSON.stringify(wrongStream.body)).toContain('stream');
    const tooBig = await append({ lease_token: leased.lease.token, stream: 'stdout', data: 'é'.repeat(140 * 1024) }); // 280 KiB in UTF-8
    expect(tooBig.status).toBe(400);
    expect(JSON.stringify(tooBig.body)).toContain('data must be at most 262144 bytes');
    expect(await client.taskLogs(leased.id)).toBe('');

    // Five appends of 256 KiB: the last 1 MiB of the stream is kept, newest last.
    for (let i = 0; i < 5; i++) {
      const r = await append({ lease_token: leased.lease.token, stream: 'stdout', data: String(i).repeat(256 * 1024) });
      expect(r.status).toBe(200);
    }
    const res = await fetch(`${api.url}/v1/tasks/${leased.id}/logs`);
    const text = await res.text();
    expect(res.headers.get('tagflow-log-truncated')).toBe('true');
    expect(text.length).toBe(4 * 256 * 1024);
    expect(text.startsWith('1')).toBe(true);
    expect(text.endsWith('4')).toBe(true);

    // Empty pieces are refused (they would pile up rows); NUL, which PostgreSQL's text refuses, is kept as U+FFFD.
    expect((await append({ lease_token: leased.lease.token, stream: 'stderr', data: '' })).status).toBe(400);
    expect((await append({ lease_token: leased.lease.token, stream: 'stderr', data: 'a\u0000b' })).status).toBe(200);
    expect(await client.taskLogs(leased.id, { stream: 'stderr' })).toBe('a\uFFFDb');

    // Once the lease has ended, its holder may append no more.
    expect((await api.complete(leased, {}, { stdout: 'binary\u0000tail' })).status).toBe(200);
    expect((await append({ lease_token: leased.lease.token, stream: 'stdout', data: 'late' })).status).toBe(409);
    expect((await api.get(`/v1/tasks/${leased.id}`)).body.stdout).toBe('binary\uFFFDtail');
  }, 60_000);

  it("streams a workflow's transitions and its tasks' as they happen, and resumes from an event id", async () => {
    const wf = await api.createWorkflow(
      workflow({
        tasks: [
          task('first', { tags: [tag], ...sh('true') }),
          task('second', { tags: [tag], requires: ['first'], ...sh('true') }),
        ],
      }),
    );
    const abort = new AbortController();
    const events: WorkflowStreamEvent[] = [];
    const following = (async () => {
      for await (const e of client.followWorkflowEvents(wf.id, undefined, abort.signal)) {
        events.push(e);
        if (e.task_id === undefined && e.to === 'SUCCESS') break;
      }
    })();
    await waitForWorkflow(api, wf.id, ['RUNNING']);
    // Added while it runs: shows up in the stream like the others.
    expect(
      (
        await api.post(
          `/v1/workflows/${wf.id}/tasks`,
          task('added', { tags: [tag], requires: ['second'], ...sh('true') }),
        )
      ).status,
    ).toBe(201);
    expect((await api.post(`/v1/workflows/${wf.id}/seal`)).status).toBe(200);
    await waitFor(
      "the stream to reach the workflow's end",
      async () => events.some((e) => e.task_id === undefined && e.to === 'SUCCESS'),
      30_000,
    );
    abort.abort();
    await following;
    const of = (name: string) => events.filter((e) => e.name === name).map((e) => e.to);
    for (const name of ['first', 'second', 'added']) expect(of(name).slice(-2)).toEqual(['RUNNING', 'SUCCESS']);
    // A task's history starts with its arrival, so a watcher sees a task come even while it waits.
    expect(events.find((e) => e.name === 'added')).toMatchObject({ from: null, to: 'WAITING', reason: 'added' });
    const at = (name: string, to: string) => events.findIndex((e) => e.name === name && e.to === to);
    expect(at('first', 'SUCCESS')).toBeLessThan(at('second', 'RUNNING'));
    expect(at('second', 'SUCCESS')).toBeLessThan(at('added', 'RUNNING'));
    expect(events[events.length - 1]).toMatchObject({ from: 'RUNNING', to: 'SUCCESS' });
    expect(events[events.length - 1].task_id).toBeUndefined();

    // The same history as pages, and from an event id on.
    const all = (await client.workflowEvents(wf.id)).items;
    const content = (list: WorkflowStreamEvent[]) => list.map(({ id: _id, ...e }) => JSON.stringify(e)).sort();
    expect(content(all)).toEqual(content(events));
    const firstPage = await client.workflowEvents(wf.id, { limit: 2 });
    expect(firstPage.items).toEqual(all.slice(0, 2));
    expect((await client.workflowEvents(wf.id, { after: firstPage.next! })).items).toEqual(all.slice(2));
    // The workflow is finished: the followed stream sends what is left, then `end`, and closes.
    const resumed = await readStream(
      await fetch(`${api.url}/v1/workflows/${wf.id}/events?follow=1`, {
        headers: { 'last-event-id': all[all.length - 3].id },
      }),
    );
    expect(resumed.map((e) => e.event)).toEqual(['transition', 'transition', 'end']);
    expect(resumed.slice(0, 2).map((e) => JSON.parse(e.data) as WorkflowStreamEvent)).toEqual(all.slice(-2));
    expect(JSON.parse(resumed[2].data)).toEqual({ state: 'SUCCESS' });
    expect((await api.get(`/v1/workflows/${wf.id}/events?after=nonsense`)).status).toBe(400);
    expect((await api.get(`/v1/workflows/00000000-0000-4000-8000-000000000000/events?follow=1`)).status).toBe(404);
  }, 60_000);

  /** A transaction that has written (so holds an id) and stays open until `end`. */
  async function openTransaction(url: string): Promise<{ end: () => Promise<void> }> {
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    await db.query('BEGIN');
    await db.query('SELECT pg_current_xact_id()');
    return { end: () => db.query('ROLLBACK').then(() => db.end()) };
  }

  (DATABASE === 'postgres' ? it : it.skip)(
    'on PostgreSQL, a long transaction in another database holds no history back; one in the same database holds back what came after it',
    async () => {
      const run = async () => {
        const wf = await api.createWorkflow(
          workflow({ sealed: true, tasks: [task('one', { tags: [tag], ...sh('true') })] }),
        );
        await waitForWorkflow(api, wf.id, ['SUCCESS']);
        return wf.id;
      };
      const ended = async (id: string) =>
        (await client.workflowEvents(id)).items.some((e) => e.task_id === undefined && e.to === 'SUCCESS');
      // A pg_dump of another database on the server, say.
      const server = new URL(process.env.TEST_PG_DIRECT_URL ?? process.env.TEST_PG_URL!);
      server.pathname = '/postgres';
      const elsewhere = await openTransaction(server.toString());
      try {
        const id = await run();
        await waitFor('the history to show the workflow ended', () => ended(id), 5_000);
      } finally {
        await elsewhere.end();
      }
      // In Tagflow's own database an open transaction could still write events that sort
      // before the new ones: they wait for it, so a follower never passes one.
      const here = await openTransaction(api.databaseUrl);
      let id: string;
      try {
        id = await run();
        expect((await client.workflowEvents(id)).items).toEqual([]);
      } finally {
        await here.end();
      }
      await waitFor('the history once the older transaction ended', () => ended(id), 5_000);
    },
    60_000,
  );

  it('lets a credential follow at most STREAMS_PER_CREDENTIAL streams at once', async () => {
    const wf = await api.createWorkflow(workflow({ tasks: [task('idle', { tags: [`nobody-${uniq()}`] })] }));
    const aborts = Array.from({ length: 3 }, () => new AbortController());
    const open = await Promise.all(
      aborts.map((a) => fetch(`${api.url}/v1/workflows/${wf.id}/events?follow=1`, { signal: a.signal })),
    );
    expect(open.map((r) => r.status)).toEqual([200, 200, 200]);
    const fourth = await api.get(`/v1/workflows/${wf.id}/events?follow=1`);
    expect(fourth.status).toBe(429);
    expect(String(fourth.body.message)).toContain('STREAMS_PER_CREDENTIAL');
    // Pages are not streams, and a closed stream frees its place.
    expect((await api.get(`/v1/workflows/${wf.id}/events`)).status).toBe(200);
    aborts[0].abort();
    await waitFor('a closed stream to free its place', async () => {
      const r = await fetch(`${api.url}/v1/workflows/${wf.id}/events?follow=1`, {
        signal: AbortSignal.timeout(2000),
      }).catch(() => null);
      if (r?.status !== 200) return false;
      void r.body?.cancel();
      return true;
    });
    for (const a of aborts) a.abort();
  }, 60_000);

  it('is served to the worker through report-and-poll and one heartbeat per worker', async () => {
    const single = {
      complete: await requestsTo(api, 'POST', '/v1/tasks/:id/complete'),
      heartbeat: await requestsTo(api, 'POST', '/v1/tasks/:id/heartbeat'),
    };
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: Array.from({ length: 6 }, (_, i) => task(`t${i}`, { tags: [tag], lease_s: 2, ...sh('sleep 1.5') })),
      }),
    );
    await waitForWorkflow(api, wf.id, ['SUCCESS'], 30_000);
    expect(await requestsTo(api, 'POST', '/v1/tasks/report')).toBeGreaterThan(0);
    expect(await requestsTo(api, 'POST', '/v1/workers/:id/heartbeat')).toBeGreaterThan(0);
    // The single-task routes are not needed by this worker any more.
    expect(await requestsTo(api, 'POST', '/v1/tasks/:id/complete')).toBe(single.complete);
    expect(await requestsTo(api, 'POST', '/v1/tasks/:id/heartbeat')).toBe(single.heartbeat);
    expect(await requestsTo(api, 'POST', '/v1/tasks/:id/logs')).toBeGreaterThan(0);
  }, 60_000);
});

/** Lets a waiting task of the shell executor go on: it polls for `$TAGFLOW_INPUT.go`. */
function touchGoFile(worker: WorkerProcess, taskId: string): void {
  const workDir = worker.workDir;
  const dir = readdirSync(workDir).find((d) => d.startsWith(`${taskId}-`));
  if (!dir) throw new Error(`no attempt directory of ${taskId} in ${workDir}`);
  writeFileSync(join(workDir, dir, 'input.json.go'), '');
}
