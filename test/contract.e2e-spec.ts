import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual, promisify } from 'node:util';
import { requestProblem } from './support/contract.js';
import { Api, task, workflow } from './support/harness.js';

/** Answers a client generated from the contract relies on: the states it records, the values it accepts, the errors it names. */
describe('the API contract: defects found generating a client', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    await api.stop();
  });

  it('serves the document kept in docs/openapi.json, each operation named and open routes asking no key', async () => {
    const served = (await api.get('/docs/json')).body;
    const kept = JSON.parse(readFileSync('docs/openapi.json', 'utf8'));
    const differing = Object.keys({ ...served.paths, ...kept.paths }).filter(
      (p) => !isDeepStrictEqual(served.paths[p], kept.paths[p]),
    );
    // A changed route or DTO: `npm run openapi` writes the file again.
    expect({ differing, rest: isDeepStrictEqual({ ...served, paths: {} }, { ...kept, paths: {} }) }).toEqual({
      differing: [],
      rest: true,
    });
    const operations = Object.values(served.paths as Record<string, Record<string, any>>).flatMap((item) =>
      Object.values(item),
    );
    expect(operations.length).toBeGreaterThan(40);
    for (const op of operations) expect(op.operationId).toMatch(/^[a-z][A-Za-z]+$/);
    expect(served.paths['/health'].get.security).toEqual([]);
    expect(served.paths['/v1/workflows'].get.security).toBeUndefined(); // the document's: a bearer key
    expect(served.security).toEqual([{ bearer: [] }]);
  });

  it('is enough for a client generated from it: a program typed by openapi-typescript alone creates, polls, reports and reads', async () => {
    const run = promisify(execFile);
    // Generates examples/typed-client/openapi.d.ts and compiles the program under --strict (any type error fails here).
    await run('npm', ['run', '--silent', 'typed-client'], { timeout: 60_000 });
    const { stdout } = await run(process.execPath, ['dist/examples/typed-client/main.js'], {
      env: { ...process.env, TAGFLOW_API_URL: api.url },
      timeout: 30_000,
    });
    expect(stdout).toMatch(/^workflow \S+: RUNNING, 1 ready$/m);
    expect(stdout).toMatch(/^leased greet \(attempt 1\)/m);
    expect(stdout).toMatch(/^task greet: SUCCESS, output greeting: hello$/m);
  }, 90_000);

  const transitionsOf = async (workflowId: string, taskId: string) =>
    ((await api.get(`/v1/workflows/${workflowId}/events?limit=1000`)).body.items as any[])
      .filter((e) => e.task_id === taskId)
      .map((e) => `${e.from} -> ${e.to}`);

  it('records READY -> CANCELLED when a READY task is cancelled, alone or with its workflow', async () => {
    const cancelTask = (_wf: string, taskId: string) => `/v1/tasks/${taskId}/cancel`;
    const cancelWorkflow = (wf: string) => `/v1/workflows/${wf}/cancel`;
    for (const [name, cancel] of [
      ['ready-one', cancelTask],
      ['ready-two', cancelWorkflow],
    ] as const) {
      const wf = await api.createWorkflow(workflow({ tasks: [task(name)] }));
      const ready = await api.task(wf.id, name);
      expect(ready.state).toBe('READY');
      expect((await api.post(cancel(wf.id, ready.id))).status).toBe(200);
      expect(await transitionsOf(wf.id, ready.id)).toEqual([
        'null -> WAITING',
        'WAITING -> READY',
        'READY -> CANCELLED',
      ]);
    }
  });

  it('keeps JSON null in the data space, as any other JSON value', async () => {
    const wf = await api.createWorkflow(workflow({ tasks: [] }));
    const put = await api.request('PUT', `/v1/workflows/${wf.id}/data/nothing`, { value: null });
    expect(put.status).toBe(200);
    const got = await api.get(`/v1/workflows/${wf.id}/data/nothing`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ key: 'nothing', value: null });
    // A body without `value` is still refused, naming it.
    const missing = await api.request('PUT', `/v1/workflows/${wf.id}/data/other`, {});
    expect(missing.status).toBe(400);
    expect(missing.body.message).toMatch(/value/);
  });

  it('names only the rule a number breaks', async () => {
    const half = await api.get('/v1/workflows?limit=1.5');
    expect(half.status).toBe(400);
    expect(half.body.message).toBe('invalid request: limit: limit must be an integer number');
    const big = await api.get('/v1/workflows?limit=501');
    expect(big.status).toBe(400);
    expect(big.body.message).toBe('invalid request: limit: limit must not be greater than 500');
    const word = await api.get('/v1/workflows?limit=ten');
    expect(word.status).toBe(400);
    expect(word.body.message).toBe('invalid request: limit: limit must be an integer number');
    // In a body too: a name that is not a string is not also said to be too long or malformed.
    const name = await api.post('/v1/workflows', { name: 12 });
    expect(name.status).toBe(400);
    expect(name.body.message).toBe('invalid request: name: name must be a string');
  });

  it('documents requests as strictly as it validates them: the document and the API agree on each body', async () => {
    const noop = { type: 'noop' };
    const wf = (extra: object = {}, taskExtra: object = {}) => ({
      name: 'strict',
      ...extra,
      tasks: [{ name: 'a', action: noop, ...taskExtra }],
    });
    const nulls = (fields: string[]) => Object.fromEntries(fields.map((f) => [f, null]));
    const cases: [string, string, string, unknown][] = [
      ['a workflow', 'POST', '/v1/workflows', wf()],
      [
        'every optional field null',
        'POST',
        '/v1/workflows',
        wf(nulls(['description', 'tags', 'input', 'sealed', 'on_failure', 'retention_days', 'limits', 'callback'])),
      ],
      [
        'every optional task field null',
        'POST',
        '/v1/workflows',
        wf(
          {},
          nulls([
            'tags',
            'input',
            'requires',
            'requires_tags',
            'retry',
            'timeout_s',
            'lease_s',
            'on_error',
            'revert',
            'produces',
            'priority',
            'not_before',
            'callback',
          ]),
        ),
      ],
      [
        'full retry',
        'POST',
        '/v1/workflows',
        wf({}, { retry: { count: 2, delay_s: 0.5, backoff: 2, max_delay_s: null } }),
      ],
      ['an unknown field', 'POST', '/v1/workflows', wf({ colour: 'red' })],
      ['an unknown task field', 'POST', '/v1/workflows', wf({}, { colour: 'red' })],
      ['an unknown retry field', 'POST', '/v1/workflows', wf({}, { retry: { tries: 2 } })],
      ['a fractional timeout', 'POST', '/v1/workflows', wf({}, { timeout_s: 1.5 })],
      ['a fractional retry count', 'POST', '/v1/workflows', wf({}, { retry: { count: 1.5 } })],
      ['a fractional retention', 'POST', '/v1/workflows', wf({ retention_days: 1.5 })],
      ['a priority over 100', 'POST', '/v1/workflows', wf({}, { priority: 101 })],
      ['a name with a space', 'POST', '/v1/workflows', wf({}, { name: 'a b' })],
      ['a tag with a space', 'POST', '/v1/workflows', wf({ tags: ['a b'] })],
      ['33 tags', 'POST', '/v1/workflows', wf({ tags: Array.from({ length: 33 }, (_, i) => `t${i}`) })],
      ['a data key with a space', 'POST', '/v1/workflows', wf({}, { produces: ['a b'] })],
      ['a negative limit', 'POST', '/v1/workflows', wf({ limits: { web: -1 } })],
      ['a fractional limit', 'POST', '/v1/workflows', wf({ limits: { web: 1.5 } })],
      ['a limit over the most', 'POST', '/v1/workflows', wf({ limits: { web: 100_001 } })],
      ['a time to the minute', 'POST', '/v1/workflows', wf({}, { not_before: '2026-12-01T06:00Z' })],
      ['a time without its zone', 'POST', '/v1/workflows', wf({}, { not_before: '2026-12-01T06:00:00' })],
      ['an unknown on_failure', 'POST', '/v1/workflows', wf({ on_failure: 'explode' })],
      ['an action without a type', 'POST', '/v1/workflows', wf({}, { action: {} })],
      ['no name', 'POST', '/v1/workflows', { tasks: [] }],
      ['a poll', 'POST', '/v1/tasks/poll', { tags: ['strict-none'], wait_s: 0, max_tasks: 2 }],
      ['a poll for 1.5 tasks', 'POST', '/v1/tasks/poll', { tags: ['strict-none'], wait_s: 0, max_tasks: 1.5 }],
      ['a poll with a null worker', 'POST', '/v1/tasks/poll', { tags: ['strict-none'], wait_s: 0, worker_id: null }],
      ['a limit', 'PUT', '/v1/limits/strict', { max_running: 2 }],
      ['a fractional limit', 'PUT', '/v1/limits/strict', { max_running: 2.5 }],
      ['a key with a bad tag', 'POST', '/v1/keys', { name: 'strict', role: 'reader', tags: ['a b'] }],
      ['a key with an unknown role', 'POST', '/v1/keys', { name: 'strict', role: 'root' }],
    ];
    const disagreements: string[] = [];
    for (const [label, method, path, body] of cases) {
      const problem = requestProblem(method, path, body);
      const answer = await api.request(method, path, body);
      const refused = answer.status === 400;
      if (refused !== (problem !== null))
        disagreements.push(
          `${label}: the API answered ${answer.status} (${answer.body?.message ?? ''}), the document ${problem ?? 'allows it'}`,
        );
    }
    expect(disagreements).toEqual([]);
  });

  it('counts a malformed body on a real route under that route in /metrics', async () => {
    const route = 'tagflow_http_requests_total{method="POST",route="/v1/workflows",status="400"}';
    const count = async () => {
      const line = String((await api.get('/metrics')).body)
        .split('\n')
        .find((l) => l.startsWith(route));
      return line ? Number(line.split(' ').pop()) : 0;
    };
    const before = await count();
    const r = await api.request('POST', '/v1/workflows', '{"name": ');
    expect(r.status).toBe(400);
    expect(await count()).toBe(before + 1);
  });
});

describe('the API contract: a request without a key is refused for that first', () => {
  const admin = `tfk_${randomBytes(24).toString('base64url')}`;
  let api: Api;
  beforeAll(async () => {
    api = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin, RATE_LIMIT_ANON_RPS: '0' } });
  });
  afterAll(async () => {
    await api.stop();
  });

  it('answers 401, not 400 or 413, to a request without a key and a bad or oversized body', async () => {
    expect((await api.request('POST', '/v1/workflows', '{"name": ')).status).toBe(401);
    expect((await api.request('POST', '/v1/workflows', { name: 7, tasks: 'x' })).status).toBe(401);
    // An oversized body is not even read: test/security.e2e-spec.ts reads that 401 off the socket.
    expect((await api.request('PUT', '/v1/workflows/x/data/k', '{')).status).toBe(401);
  });
});
