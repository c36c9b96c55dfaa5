import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Api, task, waitFor, waitForTask, waitForWorkflow, workflow } from './support/harness.js';
import { WorkerProcess } from './support/worker-process.js';

const uniq = () => Math.random().toString(36).slice(2, 10);

/** Outputs into inputs, the data space with blocking reads, cycles and deadlocks. */
describe('data flow', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    await api.stop();
  });

  it('resolves each reference form, nested and inline, when the task is handed out', async () => {
    const t = `ref-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        input: { env: 'prod', dbs: [{ port: 5432 }] },
        tasks: [
          task('master', { tags: [t], produces: ['cluster.secret'] }),
          task('replica', {
            tags: [t],
            input: {
              master: '{{ tasks.master.output.ip }}',
              ports: '{{ tasks.master.output.ports }}',
              dsn: 'postgres://{{ tasks.master.output.ip }}:{{ workflow.input.dbs[0].port }}/app',
              nested: [{ env: '{{ workflow.input.env }}', secret: '{{ data.cluster.secret }}' }],
              template: '{{ inventory_hostname }}',
            },
          }),
        ],
      }),
    );
    const replica = await api.task(wf.id, 'replica');
    expect(replica).toMatchObject({ state: 'WAITING', requires: ['master'] }); // implied by the reference
    const master = await api.take([t]);
    expect(master.name).toBe('master');
    await api.complete(master, { ip: '10.0.0.5', ports: [5432, 5433], cluster: { secret: 's3cr3t' } });
    const got = await api.take([t]);
    expect(got.input).toEqual({
      master: '10.0.0.5',
      ports: [5432, 5433],
      dsn: 'postgres://10.0.0.5:5432/app',
      nested: [{ env: 'prod', secret: 's3cr3t' }],
      template: '{{ inventory_hostname }}',
    });
    expect((await api.get(`/v1/workflows/${wf.id}/data/cluster.secret`)).body).toMatchObject({
      key: 'cluster.secret',
      value: 's3cr3t',
      task_id: master.id,
    });
  });

  it('fails a task whose reference names a missing field with INPUT_RESOLUTION', async () => {
    const t = `miss-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('a', { tags: [t] }),
          task('b', { tags: [t], retry: { count: 3 }, input: { x: '{{ tasks.a.output.nope.deeper }}' } }),
        ],
      }),
    );
    await api.complete(await api.take([t]), { yes: 1 });
    // The poll that takes b resolves its input, fails it and hands out nothing.
    expect(await api.poll([t], { wait_s: 0 })).toEqual([]);
    const b = await waitForTask(api, wf.id, 'b', ['ERROR']);
    expect(b.error).toEqual({
      code: 'INPUT_RESOLUTION',
      message: 'cannot resolve {{ tasks.a.output.nope.deeper }}: no field nope.deeper',
    });
    expect(b.attempt).toBe(1);
    expect((await waitForWorkflow(api, wf.id, ['ERROR'])).state).toBe('ERROR');
  });

  it('keeps a task WAITING until the data key it reads is written, then gives it the value', async () => {
    const t = `wait-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({ tasks: [task('reader', { tags: [t], input: { cfg: '{{ data.app.config }}' } })] }),
    );
    expect((await api.task(wf.id, 'reader')).state).toBe('WAITING');
    const put = await api.request('PUT', `/v1/workflows/${wf.id}/data/app.config`, { value: { heap: '2g' } });
    expect(put.status).toBe(200);
    const got = await api.take([t]);
    expect(got.input).toEqual({ cfg: { heap: '2g' } });
  });

  it('runs fine-grained cross dependencies that are not a cycle', async () => {
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('a1', { tags: ['A'] }),
          task('a2', { tags: ['A'] }),
          task('a3', { tags: ['A'], requires: ['b2'] }),
          task('b1', { tags: ['B'], requires: ['a1'] }),
          task('b2', { tags: ['B'] }),
          task('b3', { tags: ['B'] }),
        ],
      }),
    );
    const waiting = (await api.get(`/v1/workflows/${wf.id}/tasks?state=WAITING`)).body.items.map((x: any) => x.name);
    expect(waiting.sort()).toEqual(['a3', 'b1']);
    const first = [...(await api.poll(['A'], { max_tasks: 10 })), ...(await api.poll(['B'], { max_tasks: 10 }))];
    expect(first.map((x) => x.name).sort()).toEqual(['a1', 'a2', 'b2', 'b3']);
    for (const x of first) await api.complete(x);
    const then = [
      ...(await api.poll(['A'], { max_tasks: 10, wait_s: 2 })),
      ...(await api.poll(['B'], { max_tasks: 10, wait_s: 2 })),
    ];
    expect(then.map((x) => x.name).sort()).toEqual(['a3', 'b1']);
  });

  it('names the cycle for each kind of edge', async () => {
    const cases: [object[], RegExp][] = [
      [[task('a', { requires: ['b'] }), task('b', { requires: ['a'] })], /^dependency cycle: a -> b -> a$/],
      [
        [task('a', { requires_tags: ['web'] }), task('b', { tags: ['web'], requires: ['a'] })],
        /^dependency cycle: a -> tag:web -> b -> a$/,
      ],
      [
        [task('a', { input: { x: '{{ tasks.b.output.v }}' } }), task('b', { input: { y: '{{ tasks.a.output.v }}' } })],
        /^dependency cycle: a -> b -> a$/,
      ],
      [
        [
          task('a', { produces: ['k1'], input: { v: '{{ data.k2 }}' } }),
          task('b', { produces: ['k2'], input: { v: '{{ data.k1 }}' } }),
        ],
        /^dependency cycle: a -> data:k2 -> b -> data:k1 -> a$/,
      ],
    ];
    for (const [tasks, message] of cases) {
      const r = await api.post('/v1/workflows', workflow({ tasks }));
      expect(r.status).toBe(422);
      expect(r.body.message).toMatch(message);
    }
    const malformed = await api.post(
      '/v1/workflows',
      workflow({ tasks: [task('a', { input: { x: '{{ tasks.b.result }}' } })] }),
    );
    expect(malformed.status).toBe(422);
    expect(malformed.body.message).toContain('tasks.NAME.output');
  });

  it('reports a deadlock instead of hanging: a sealed workflow waits for a key nobody can write', async () => {
    const t = `dl-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        on_failure: 'continue',
        tasks: [
          task('writer', { tags: [t], produces: ['token'] }),
          task('reader', { tags: [t], input: { tok: '{{ data.token }}' } }),
        ],
      }),
    );
    await api.post(`/v1/workflows/${wf.id}/seal`);
    expect((await api.task(wf.id, 'reader')).state).toBe('WAITING'); // the writer may still write it
    await api.complete(await api.take([t]), { nothing: 'useful' }); // ...but does not
    const reader = await waitForTask(api, wf.id, 'reader', ['ERROR']);
    expect(reader.error).toEqual({
      code: 'DEADLOCK',
      message: 'waits for data key token that no unfinished task of the sealed workflow produces',
    });
    expect((await waitForWorkflow(api, wf.id, ['ERROR', 'SUCCESS'])).state).toBe('ERROR');
  });

  it('reports a deadlock at seal time when no task declares the key', async () => {
    const wf = await api.createWorkflow(workflow({ tasks: [task('orphan', { input: { v: '{{ data.never }}' } })] }));
    expect((await api.post(`/v1/workflows/${wf.id}/seal`)).status).toBe(200);
    expect((await api.task(wf.id, 'orphan')).error).toEqual({
      code: 'DEADLOCK',
      message: 'waits for data key never that no unfinished task of the sealed workflow produces',
    });
    expect((await waitForWorkflow(api, wf.id, ['ERROR'])).state).toBe('ERROR');
  });

  it('checks a rerun DEADLOCK task again: still no producer, DEADLOCK again; the key written, it runs with it', async () => {
    const t = `dl-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        on_failure: 'continue',
        tasks: [
          task('hold', { tags: [`${t}-hold`] }), // never taken: keeps the workflow unfinished
          task('orphan', { tags: [t], input: { v: '{{ data.never }}' } }),
        ],
      }),
    );
    const orphan = await api.task(wf.id, 'orphan');
    expect(orphan).toMatchObject({ state: 'ERROR', attempt: 1, error: { code: 'DEADLOCK' } });
    expect((await api.post(`/v1/tasks/${orphan.id}/rerun`)).status).toBe(200);
    expect(await waitForTask(api, wf.id, 'orphan', ['ERROR'])).toMatchObject({
      attempt: 2,
      error: { code: 'DEADLOCK', message: expect.stringContaining('data key never') },
    });
    expect(await api.poll([t])).toEqual([]); // never offered with its input unresolved
    expect((await api.request('PUT', `/v1/workflows/${wf.id}/data/never`, { value: 1 })).status).toBe(200);
    expect((await api.post(`/v1/tasks/${orphan.id}/rerun`)).status).toBe(200);
    const got = await api.take([t]);
    expect(got).toMatchObject({ name: 'orphan', attempt: 3, input: { v: 1 } });
    await api.complete(got);
    expect(await api.task(wf.id, 'orphan')).toMatchObject({ state: 'SUCCESS' });
  });

  it('deadlocks only the task that waits for a key nobody writes, when both arrive with the sealed workflow', async () => {
    const t = `dl-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        on_failure: 'continue',
        tasks: [task('ok', { tags: [t] }), task('stuck', { tags: [t], input: { v: '{{ data.never.written }}' } })],
      }),
    );
    const stuck = await api.task(wf.id, 'stuck');
    expect(stuck).toMatchObject({
      state: 'ERROR',
      error: {
        code: 'DEADLOCK',
        message: 'waits for data key never.written that no unfinished task of the sealed workflow produces',
      },
    });
    expect((await api.task(wf.id, 'ok')).state).toBe('READY'); // not caught by the workflow-wide check
    const ok = await api.take([t]);
    expect(ok.name).toBe('ok');
    expect((await api.complete(ok)).body.state).toBe('SUCCESS');
    const done = await waitForWorkflow(api, wf.id, ['ERROR', 'SUCCESS']);
    expect(done).toMatchObject({ state: 'ERROR', task_counts: { SUCCESS: 1, ERROR: 1 } });
  });

  it('keeps the input a worker received, references replaced, with the attempt', async () => {
    const t = `ri-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        input: { region: 'eu-west' },
        sealed: true,
        tasks: [
          task('first', { tags: [t] }),
          task('second', {
            tags: [t],
            input: { from: '{{ tasks.first.output.n }}', where: 'in {{ workflow.input.region }}', plain: 1 },
          }),
        ],
      }),
    );
    const first = await api.take([t]);
    expect((await api.task(wf.id, 'first')).resolved_input).toBeNull(); // no references: the input itself
    await api.complete(first, { n: 42 });
    const second = await api.take([t]);
    expect(second.input).toEqual({ from: 42, where: 'in eu-west', plain: 1 });
    const shown = await api.task(wf.id, 'second');
    expect(shown.input).toEqual({
      from: '{{ tasks.first.output.n }}',
      where: 'in {{ workflow.input.region }}',
      plain: 1,
    });
    expect(shown.resolved_input).toEqual({ from: 42, where: 'in eu-west', plain: 1 });
    await api.complete(second);
    expect((await api.task(wf.id, 'second')).resolved_input).toEqual({ from: 42, where: 'in eu-west', plain: 1 });
  });

  it('blocks a read until the key is written, and answers 404 pending when the wait ends', async () => {
    const wf = await api.createWorkflow(workflow());
    const started = Date.now();
    const timedOut = await api.get(`/v1/workflows/${wf.id}/data/not.yet?wait_s=1`);
    expect(timedOut.status).toBe(404);
    expect(timedOut.body.pending).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);

    const blocked = api.get(`/v1/workflows/${wf.id}/data/master.ip?wait_s=20`);
    await waitFor('the read to block', async () => (await api.metric('tagflow_data_reads_waiting')) >= 1);
    expect((await api.request('PUT', `/v1/workflows/${wf.id}/data/master.ip`, { value: '10.1.1.1' })).status).toBe(200);
    expect((await blocked).body).toMatchObject({ key: 'master.ip', value: '10.1.1.1' });
    const list = await api.get(`/v1/workflows/${wf.id}/data`);
    expect(list.body.items.map((i: any) => i.key)).toEqual(['master.ip']);
  });

  it('serves task outputs as tasks.NAME.output and validates keys and values', async () => {
    const t = `out-${uniq()}`;
    const wf = await api.createWorkflow(workflow({ tasks: [task('made', { tags: [t] })] }));
    const waiting = api.get(`/v1/workflows/${wf.id}/data/tasks.made.output?wait_s=20`);
    await api.complete(await api.take([t]), { answer: 42 });
    expect((await waiting).body).toMatchObject({ key: 'tasks.made.output', value: { answer: 42 } });
    expect((await api.request('PUT', `/v1/workflows/${wf.id}/data/tasks.made.output`, { value: 1 })).status).toBe(400);
    expect((await api.request('PUT', `/v1/workflows/${wf.id}/data/bad key`, { value: 1 })).status).toBe(400);
    expect((await api.request('PUT', `/v1/workflows/${wf.id}/data/k`, {})).status).toBe(400);
    expect((await api.request('PUT', `/v1/workflows/${wf.id}/data/k`, { value: 'x'.repeat(300 * 1024) })).status).toBe(
      413,
    );
    expect((await api.get(`/v1/workflows/00000000-0000-4000-8000-000000000000/data/k`)).status).toBe(404);
  });

  it('lets scripts on servers get and put data through the worker helper', async () => {
    const t = `helper-${uniq()}`;
    const worker = await WorkerProcess.start({ api: api.url, tags: [t], concurrency: 2 });
    try {
      const wf = await api.createWorkflow(
        workflow({
          sealed: true,
          tasks: [
            task('consumer', {
              tags: [t],
              action: {
                type: 'shell',
                command:
                  'v=$(tagflow-worker data get shared.answer --wait 30) && echo "{\\"got\\": $v}" > "$TAGFLOW_OUTPUT"',
              },
            }),
            task('producer', {
              tags: [t],
              produces: ['shared.answer'],
              action: { type: 'shell', command: 'sleep 0.5; tagflow-worker data put shared.answer \'{"n": 7}\'' },
            }),
            task('missing', {
              tags: [t],
              action: { type: 'shell', command: 'tagflow-worker data get never.written --wait 1' },
            }),
          ],
        }),
      );
      await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'], 30_000);
      expect((await api.task(wf.id, 'consumer')).output).toEqual({ got: { n: 7 } });
      const missing = await api.task(wf.id, 'missing');
      expect(missing).toMatchObject({ state: 'ERROR', exit_code: 3 });
      expect(missing.stderr).toContain('never.written was not written within 1 s');
      expect((await api.get(`/v1/workflows/${wf.id}/data/shared.answer`)).body.value).toEqual({ n: 7 });
    } finally {
      await worker.stop();
    }
  });
});

describe("data space with keys: a lease token opens its own workflow's data", () => {
  let api: Api;
  const token = 'an-api-token-long-enough';
  const auth = { authorization: `Bearer ${token}` };
  beforeAll(async () => {
    api = await Api.start({ env: { API_TOKEN: token } });
  });
  afterAll(async () => {
    await api.stop();
  });

  it('accepts the lease of a running task for its workflow only', async () => {
    const t = `lt-${uniq()}`;
    const wf = (
      await api.request(
        'POST',
        '/v1/workflows',
        workflow({ tasks: [task('x', { tags: [t], produces: ['from.script'] })] }),
        auth,
      )
    ).body;
    const other = (await api.request('POST', '/v1/workflows', workflow(), auth)).body;
    const polled = (await api.request('POST', '/v1/tasks/poll', { tags: [t], wait_s: 5 }, auth)).body.tasks[0];
    const lease = { authorization: `Bearer ${polled.lease.token}` };
    const put = await api.request('PUT', `/v1/workflows/${wf.id}/data/from.script`, { value: true }, lease);
    expect(put.status).toBe(200);
    expect(put.body.task_id).toBe(polled.id);
    expect((await api.request('GET', `/v1/workflows/${wf.id}/data/from.script`, undefined, lease)).status).toBe(200);
    // Not a key, and not a lease of that workflow: unauthenticated there (the contract's 401).
    expect((await api.request('PUT', `/v1/workflows/${other.id}/data/k`, { value: 1 }, lease)).status).toBe(401);
    expect((await api.request('GET', `/v1/workflows/${wf.id}`, undefined, lease)).status).toBe(401);
    await api.request('POST', `/v1/tasks/${polled.id}/complete`, { lease_token: polled.lease.token }, auth);
    expect((await api.request('GET', `/v1/workflows/${wf.id}/data/from.script`, undefined, lease)).status).toBe(401); // the lease ended
  });
});
