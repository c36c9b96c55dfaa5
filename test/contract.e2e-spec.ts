import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual, promisify } from 'node:util';
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
    // A changed route or DTO: `npm run build && npm run openapi` writes the file again.
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
