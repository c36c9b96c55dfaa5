import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Api, DATABASE, shortId, task, waitFor, workflow } from './support/harness.js';

/**
 * The second security round, as an outsider and as a key holder would try it: access
 * that outlives its key, work done for requests that bring no valid credential, operators
 * reaching tasks outside their grants through the workflow, schedules that outlive their
 * owner's key.
 */
const token = () => `tfk_${randomBytes(24).toString('base64url')}`;
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

interface Key {
  id: string;
  token: string;
}

/** Raw HTTP on one connection: the headers and the first `sent` bytes of a body of `length`. Resolves with what the API answered, or null. */
function partialRequest(
  port: number,
  head: string[],
  length: number,
  sent: number,
  timeoutMs: number,
): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const done = (v: string | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(answer || null), timeoutMs);
    socket.on('data', (c) => {
      answer += c.toString();
      if (answer.includes('\r\n\r\n') && /\r\n\r\n[\s\S]*\}/.test(answer)) done(answer);
    });
    socket.on('error', () => done(answer || null));
    socket.on('close', () => done(answer || null));
    socket.write([...head, `Content-Length: ${length}`, '', ''].join('\r\n'));
    socket.write('['.repeat(sent));
  });
}

describe('security, second round', () => {
  let api: Api;
  const admin = token();
  const call = (method: string, path: string, t?: string, body?: unknown) =>
    api.request(method, path, body, t ? bearer(t) : {});
  const newKey = async (spec: object): Promise<Key> => {
    const r = await call('POST', '/v1/keys', admin, spec);
    expect(r.status).toBe(201);
    return r.body as Key;
  };
  const revoke = async (k: Key, via = api) =>
    expect((await via.request('DELETE', `/v1/keys/${k.id}`, undefined, bearer(admin))).status).toBe(204);

  beforeAll(async () => {
    // Several tests send requests without a valid key on purpose; the per-address limit is tested on an API of its own.
    api = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin, RATE_LIMIT_ANON_RPS: '0' } });
  });
  afterAll(async () => {
    await api.stop();
  });

  describe('nothing heavy before authentication', () => {
    const port = () => Number(new URL(api.url).port);
    const head = (auth?: string) => [
      'POST /v1/workflows HTTP/1.1',
      'Host: 127.0.0.1',
      'Content-Type: application/json',
      ...(auth ? [`Authorization: Bearer ${auth}`] : []),
    ];

    it('refuses a request without a key, or with an unknown one, before its body arrives, and closes its connection', async () => {
      for (const auth of [undefined, token()]) {
        // 1 MiB announced, 100 bytes sent: an API that reads bodies first would wait for the rest.
        const answer = await partialRequest(port(), head(auth), 1024 * 1024, 100, 3000);
        expect(answer).toMatch(/^HTTP\/1\.1 401/);
        expect(answer).toMatch(/\r\nconnection: close\r\n/i);
      }
    });

    it('refuses a request without a key for that first whatever its Content-Type, even one the server cannot read', async () => {
      for (const type of ['x', ';;', 'text/plain', 'application/json; charset=nope']) {
        const r = await api.request('POST', '/v1/workflows', '{"name": "typed"}', { 'content-type': type });
        expect({ type, status: r.status }).toEqual({ type, status: 401 });
      }
      // With a key, a body of no readable type is not JSON: a 400 naming the field, nothing created.
      const keyed = await api.request('POST', '/v1/workflows', '{"name": "typed"}', {
        'content-type': 'x',
        ...bearer(admin),
      });
      expect(keyed.status).toBe(400);
    });

    it('answers a malformed URL in its error body, unsniffable, its body unread and its connection closed', async () => {
      const answer = await partialRequest(
        port(),
        ['POST /v1/tasks/%E0 HTTP/1.1', 'Host: 127.0.0.1', 'Content-Type: application/json'],
        1024 * 1024,
        100,
        3000,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 400/);
      expect(answer).toMatch(/\r\nconnection: close\r\n/i);
      expect(answer).toMatch(/\r\nx-content-type-options: nosniff\r\n/i);
      expect(answer).toMatch(/"code":"VALIDATION_FAILED"/);
    });

    it('serves /docs with its content policy and no framing however its path is spelled', async () => {
      for (const path of ['/docs', '/%64ocs', '//docs', '/DOCS', '/docs/', '/%64ocs/swagger-ui-init.js']) {
        const r = await fetch(`${api.url}${path}`);
        await r.arrayBuffer();
        if (r.status !== 200) continue; // not served under that spelling: nothing to frame
        expect({
          path,
          frames: r.headers.get('x-frame-options'),
          policy: r.headers.get('content-security-policy'),
        }).toEqual({ path, frames: 'DENY', policy: expect.stringContaining("frame-ancestors 'none'") });
      }
    });

    it('does not ask a client without a key to send its body (Expect: 100-continue)', async () => {
      const answer = await partialRequest(port(), [...head(), 'Expect: 100-continue'], 1024 * 1024, 0, 3000);
      expect(answer).toMatch(/^HTTP\/1\.1 401/);
      const known = await partialRequest(port(), [...head(admin), 'Expect: 100-continue'], 1024 * 1024, 0, 1000);
      expect(known).toMatch(/^HTTP\/1\.1 100 Continue/);
    });

    it('looks at the key again when its body arrives late: a key revoked meanwhile gets nothing', async () => {
      const worker = await newKey({ name: `slow-${shortId()}`, role: 'worker' });
      const t = `slow-${shortId()}`;
      const wf = (
        await call(
          'POST',
          '/v1/workflows',
          admin,
          workflow({ tasks: [task('secret', { tags: [t], input: { password: 'hunter2' } })] }),
        )
      ).body;
      const body = JSON.stringify({ tags: [t], wait_s: 0 });
      const socket = connect(port(), '127.0.0.1');
      let answer = '';
      socket.on('data', (c) => (answer += c.toString()));
      const closed = new Promise((r) => socket.on('close', r));
      socket.write(
        [
          'POST /v1/tasks/poll HTTP/1.1',
          'Host: 127.0.0.1',
          'Content-Type: application/json',
          `Authorization: Bearer ${worker.token}`,
          `Content-Length: ${body.length}`,
          'Connection: close',
          '',
          '',
        ].join('\r\n'),
      );
      socket.write(body.slice(0, 3));
      await new Promise((r) => setTimeout(r, 300)); // the API has admitted the key and waits for the rest
      await revoke(worker);
      socket.write(body.slice(3));
      await closed;
      expect(answer).toMatch(/^HTTP\/1\.1 401/);
      expect(answer).toContain('"code":"KEY_REVOKED"');
      expect(answer).not.toContain('hunter2');
      const [left] = (await call('POST', '/v1/tasks/poll', admin, { tags: [t], wait_s: 5 })).body.tasks;
      expect(left).toMatchObject({ workflow_id: wf.id, name: 'secret', attempt: 1 });
    });

    it('reads the body of a known key only, and bounds a compressed body by its inflated size', async () => {
      const bomb = gzipSync(Buffer.from(`{"name": "x", "pad": "${' '.repeat(2 * 1024 * 1024)}"}`));
      expect(bomb.length).toBeLessThan(4096);
      const headers = { 'content-type': 'application/json', 'content-encoding': 'gzip' };
      const post = (auth: Record<string, string>) =>
        fetch(`${api.url}/v1/workflows`, { method: 'POST', headers: { ...headers, ...auth }, body: bomb });
      // Without a key: 401, whatever the body would have become.
      expect((await post({})).status).toBe(401);
      expect((await post(bearer(token()))).status).toBe(401);
      // With one: inflated past BODY_LIMIT_BYTES, refused as too large.
      const big = await post(bearer(admin));
      expect(big.status).toBe(413);
      expect(((await big.json()) as { message: string }).message).toContain('larger than the limit');
      // A bad body without a key is a 401 too, not a 400.
      const bad = await api.request('POST', '/v1/workflows', '{not json', {});
      expect(bad.status).toBe(401);
    });

    it('limits requests without a valid credential per client address, never a valid key', async () => {
      const limited = await Api.start({
        env: { TAGFLOW_ADMIN_TOKEN: admin, RATE_LIMIT_ANON_RPS: '1', RATE_LIMIT_ANON_BURST: '5' },
      });
      try {
        const statuses: number[] = [];
        const kinds = [{}, bearer(token()), { authorization: 'Basic dXNlcjpwYXNz' }];
        for (let i = 0; i < 10; i++)
          statuses.push((await limited.request('GET', '/v1/workflows', undefined, kinds[i % 3])).status);
        expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
        expect(statuses.slice(6)).toEqual([429, 429, 429, 429]);
        const refused = await fetch(`${limited.url}/v1/workflows`);
        expect(refused.status).toBe(429);
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        // The same address with a valid key is served.
        expect((await limited.request('GET', '/v1/workflows', undefined, bearer(admin))).status).toBe(200);
        expect((await limited.get('/health')).status).toBe(200);
      } finally {
        await limited.stop();
      }
    });

    it('answers /health under 300 ms (p90) while 8 clients send 1 MiB bodies without a key for 5 s', async () => {
      const flooded = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin } });
      try {
        const flood = promisify(execFile)(process.execPath, [
          'test/support/flood.mjs',
          `${flooded.url}/v1/workflows`,
          '8',
          '5',
          String(1024 * 1024),
        ]);
        const times: number[] = [];
        const until = Date.now() + 4500;
        await new Promise((r) => setTimeout(r, 300)); // the flood under way
        while (Date.now() < until) {
          const started = performance.now();
          expect((await flooded.get('/health')).status).toBe(200);
          times.push(performance.now() - started);
          await new Promise((r) => setTimeout(r, 50));
        }
        const { sent, statuses } = JSON.parse((await flood).stdout) as {
          sent: number;
          statuses: Record<string, number>;
        };
        times.sort((a, b) => a - b);
        const p90 = times[Math.floor(times.length * 0.9)];
        expect(p90).toBeLessThan(300);
        expect(sent).toBeGreaterThan(40);
        expect(Object.keys(statuses).every((s) => s === '401' || s === '429')).toBe(true);
      } finally {
        await flooded.stop();
      }
    }, 30_000);
  });

  it('writes no audit row for a request with an unknown token', async () => {
    const wf = (await call('POST', '/v1/workflows', admin, workflow())).body;
    for (let i = 0; i < 200; i++) {
      const r = await call('PUT', `/v1/workflows/${wf.id}/data/k`, token(), { value: i });
      expect([r.status, r.body.code]).toEqual([401, 'UNAUTHENTICATED']);
    }
    const log = (await call('GET', '/v1/audit?limit=500', admin)).body.items as { path: string; status: number }[];
    expect(log.filter((e) => e.path.includes(wf.id))).toEqual([]);
  });

  describe('revocation and expiry end live access', () => {
    it("ends a revoked worker key's parked poll with 401, and hands it nothing added after", async () => {
      const worker = await newKey({ name: `w-${shortId()}`, role: 'worker' });
      const t = `rv-${shortId()}`;
      const wf = (await call('POST', '/v1/workflows', admin, workflow())).body;
      const parked = call('POST', '/v1/tasks/poll', worker.token, { tags: [t], wait_s: 30 });
      await api.pollsParked();
      const started = Date.now();
      await revoke(worker);
      expect(
        (
          await call(
            'POST',
            `/v1/workflows/${wf.id}/tasks`,
            admin,
            task('secret', { tags: [t], input: { password: 'hunter2' } }),
          )
        ).status,
      ).toBe(201);
      const answer = await parked;
      expect(answer.status).toBe(401);
      expect(answer.body.code).toBe('KEY_REVOKED');
      expect(JSON.stringify(answer.body)).not.toContain('hunter2');
      expect(Date.now() - started).toBeLessThan(5000);
      // The task was not leased to it: another worker takes it.
      const [taken] = (await call('POST', '/v1/tasks/poll', admin, { tags: [t], wait_s: 5 })).body.tasks;
      expect(taken).toMatchObject({ name: 'secret', attempt: 1 });
    });

    it("ends a revoked reader's followed event stream with an error event, and its long waits with 401", async () => {
      const reader = await newKey({ name: `r-${shortId()}`, role: 'reader' });
      const wf = (
        await call(
          'POST',
          '/v1/workflows',
          admin,
          workflow({ tasks: [task('waits', { tags: [`never-${shortId()}`] })] }),
        )
      ).body;
      const waiting = (await call('GET', `/v1/workflows/${wf.id}/tasks/waits`, admin)).body;
      const stream = await fetch(`${api.url}/v1/workflows/${wf.id}/events?follow=1`, { headers: bearer(reader.token) });
      expect(stream.status).toBe(200);
      const taskWait = call('GET', `/v1/tasks/${waiting.id}?wait_s=60`, reader.token);
      const dataWait = call('GET', `/v1/workflows/${wf.id}/data/never.written?wait_s=60`, reader.token);
      await waitFor(
        'both waits parked',
        async () =>
          (await api.metric('tagflow_task_waits_waiting')) >= 1 &&
          (await api.metric('tagflow_data_reads_waiting')) >= 1,
      );
      const started = Date.now();
      await revoke(reader);
      const text = await stream.text(); // ends when the API ends the stream
      expect(text).toMatch(/event: error\ndata: \{"status":401,"code":"KEY_REVOKED","message":"the key was revoked/);
      expect((await taskWait).status).toBe(401);
      expect((await dataWait).status).toBe(401);
      expect(Date.now() - started).toBeLessThan(5000);
    });

    it("ends a worker key's parked poll at the key's expiry, and hands it nothing that comes after", async () => {
      const expiresAt = Date.now() + 2000;
      const worker = await newKey({
        name: `e-${shortId()}`,
        role: 'worker',
        expires_at: new Date(expiresAt).toISOString(),
      });
      const t = `ex-${shortId()}`;
      const parked = call('POST', '/v1/tasks/poll', worker.token, { tags: [t], wait_s: 30 });
      await new Promise((r) => setTimeout(r, expiresAt - Date.now() + 150));
      const wf = (
        await call('POST', '/v1/workflows', admin, workflow({ tasks: [task('after-expiry', { tags: [t] })] }))
      ).body;
      const answer = await parked;
      expect(answer.status).toBe(401);
      expect(answer.body).toMatchObject({ code: 'KEY_EXPIRED', message: expect.stringContaining('expired') });
      expect(Date.now() - expiresAt).toBeLessThan(1000);
      expect((await call('GET', `/v1/workflows/${wf.id}/tasks/after-expiry`, admin)).body.state).toBe('READY');
    });

    // Two API processes on one SQLite file are not a supported setup.
    if (DATABASE === 'postgres') {
      it('ends a parked poll on another replica than the one that revoked the key', async () => {
        const other = await Api.start({
          databaseUrl: api.databaseUrl,
          prefix: api.prefix,
          env: { TAGFLOW_ADMIN_TOKEN: admin },
        });
        try {
          const worker = await newKey({ name: `x-${shortId()}`, role: 'worker' });
          const parked = other.request(
            'POST',
            '/v1/tasks/poll',
            { tags: [`xr-${shortId()}`], wait_s: 30 },
            bearer(worker.token),
          );
          await other.pollsParked();
          const started = Date.now();
          await revoke(worker, api);
          expect((await parked).status).toBe(401);
          expect(Date.now() - started).toBeLessThan(5000);
        } finally {
          await other.stop();
        }
      });
    }
  });

  describe('an operator changes a workflow only when its grants cover every task of it', () => {
    let web: Key;
    beforeAll(async () => {
      web = await newKey({ name: `web-op-${shortId()}`, role: 'operator', tags: ['web*'] });
    });

    it('refuses cancel, pause, resume, seal, adding tasks, data writes and rerun on a workflow with a task outside them, naming its tag', async () => {
      const t = shortId();
      const wf = (
        await call(
          'POST',
          '/v1/workflows',
          admin,
          workflow({
            on_failure: 'continue',
            tasks: [
              task('db-step', { tags: [`db-${t}`] }),
              task('web-step', { tags: [`web-${t}`], retry: { count: 0 } }),
            ],
          }),
        )
      ).body;
      const tries: [string, string, unknown?][] = [
        ['POST', `/v1/workflows/${wf.id}/cancel`],
        ['POST', `/v1/workflows/${wf.id}/pause`],
        ['POST', `/v1/workflows/${wf.id}/resume`],
        ['POST', `/v1/workflows/${wf.id}/seal`],
        ['POST', `/v1/workflows/${wf.id}/tasks`, task('fail-me', { tags: [`web-${t}`] })],
        ['PUT', `/v1/workflows/${wf.id}/data/db.password`, { value: 'mine' }],
      ];
      for (const [method, path, body] of tries) {
        const r = await call(method, path, web.token, body);
        expect({ path, status: r.status, code: r.body.code }).toEqual({ path, status: 403, code: 'GRANT_MISSING' });
        expect(r.body.message).toContain(`db-${t}`);
      }
      // Rerun: the web task (its own tags granted) failed; the workflow still holds the db task.
      const [leased] = (await call('POST', '/v1/tasks/poll', admin, { tags: [`web-${t}`], wait_s: 5 })).body.tasks;
      expect(
        (
          await call('POST', `/v1/tasks/${leased.id}/fail`, admin, {
            lease_token: leased.lease.token,
            error: { message: 'x', retryable: false },
          })
        ).status,
      ).toBe(200);
      const rerun = await call('POST', `/v1/tasks/${leased.id}/rerun`, web.token);
      expect(rerun.status).toBe(403);
      expect(rerun.body.message).toContain(`db-${t}`);
      // Nothing changed.
      const after = (await call('GET', `/v1/workflows/${wf.id}`, admin)).body;
      expect(after).toMatchObject({ state: 'RUNNING', sealed: false, task_counts: { READY: 1, ERROR: 1 } });
      expect((await call('GET', `/v1/workflows/${wf.id}/data/db.password`, admin)).status).toBe(404);
    });

    it('refuses a PATCH that changes what a task writes or runs on failure, and deleting the workflow when finished', async () => {
      const t = shortId();
      const wf = (
        await call(
          'POST',
          '/v1/workflows',
          admin,
          workflow({
            tasks: [
              task('prep', { tags: [`web-${t}`], on_error: [{ run: [task('undo', { tags: [`db-${t}`] })] }] }),
              task('deploy', { tags: [`db-${t}`], input: { target: '{{ data.target }}' } }),
            ],
          }),
        )
      ).body;
      const prep = (await call('GET', `/v1/workflows/${wf.id}/tasks/prep`, admin)).body;
      for (const patch of [{ produces: ['target'] }, { on_error: [] }]) {
        const r = await call('PATCH', `/v1/tasks/${prep.id}`, web.token, patch);
        expect({ patch, status: r.status, code: r.body.code }).toEqual({ patch, status: 403, code: 'GRANT_MISSING' });
      }
      expect((await call('GET', `/v1/tasks/${prep.id}`, admin)).body).toMatchObject({
        produces: [],
        on_error: [{ run: [{ name: 'undo' }] }],
      });
      expect((await call('POST', `/v1/workflows/${wf.id}/cancel`, admin)).status).toBe(200);
      const del = await call('DELETE', `/v1/workflows/${wf.id}`, web.token);
      expect([del.status, del.body.code]).toEqual([403, 'GRANT_MISSING']);
      expect((await call('GET', `/v1/workflows/${wf.id}`, admin)).status).toBe(200);
    });

    it('counts the tags of on_error handlers, and lets it change a workflow whose every task it covers', async () => {
      const t = shortId();
      const handled = (
        await call(
          'POST',
          '/v1/workflows',
          admin,
          workflow({
            tasks: [
              task('deploy', { tags: [`web-${t}`], on_error: [{ run: [task('restore-db', { tags: [`db-${t}`] })] }] }),
            ],
          }),
        )
      ).body;
      const refused = await call('POST', `/v1/workflows/${handled.id}/cancel`, web.token);
      expect(refused.status).toBe(403);
      expect(refused.body.message).toContain(`db-${t}`);
      const mine = (
        await call('POST', '/v1/workflows', web.token, workflow({ tasks: [task('a', { tags: [`web-${t}`] })] }))
      ).body;
      expect((await call('POST', `/v1/workflows/${mine.id}/pause`, web.token)).status).toBe(200);
      expect((await call('PUT', `/v1/workflows/${mine.id}/data/k`, web.token, { value: 1 })).status).toBe(200);
      expect((await call('POST', `/v1/workflows/${mine.id}/cancel`, web.token)).body.state).toBe('CANCELLED');
    });
  });

  describe("a schedule does not outlive its owner's key", () => {
    const spec = (t: string) => ({
      name: `nightly-${t}`,
      cron: '0 0 3 * * *',
      workflow: { name: 'nightly', tasks: [task('dump', { tags: [`db-${t}`] })] },
    });

    it('pauses it when the key is revoked, in the audit log and its answer; resuming makes the resuming key its owner, grants checked', async () => {
      const t = shortId();
      const owner = await newKey({ name: `sched-owner-${t}`, role: 'operator', tags: ['db*'] });
      const s = (await call('POST', '/v1/schedules', owner.token, spec(t))).body;
      expect(s).toMatchObject({ paused: false, paused_reason: null });
      await revoke(owner);
      const paused = (await call('GET', `/v1/schedules/${s.id}`, admin)).body;
      expect(paused).toMatchObject({
        paused: true,
        paused_reason: expect.stringContaining('was revoked'),
        next_run_at: null,
      });
      const log = (await call('GET', '/v1/audit?limit=500', admin)).body.items as {
        resource_id: string;
        path: string;
        key_name: string;
      }[];
      expect(log.find((e) => e.resource_id === s.id && e.path.endsWith('/pause'))).toMatchObject({
        key_name: expect.stringContaining('was revoked'),
      });
      // A key whose grants do not cover its tasks may not take it over.
      const web = await newKey({ name: `web-${t}`, role: 'operator', tags: ['web*'] });
      expect((await call('POST', `/v1/schedules/${s.id}/resume`, web.token)).status).toBe(403);
      const db = await newKey({ name: `db-${t}`, role: 'operator', tags: ['db*'] });
      const resumed = (await call('POST', `/v1/schedules/${s.id}/resume`, db.token)).body;
      expect(resumed).toMatchObject({
        paused: false,
        paused_reason: null,
        created_by: { key_id: db.id, key_name: `db-${t}` },
      });
      // A workflow triggered by hand is made by the key that asked for it.
      const other = await newKey({ name: `db2-${t}`, role: 'operator', tags: ['db*'] });
      const made = (await call('POST', `/v1/schedules/${s.id}/trigger`, other.token)).body;
      expect(made.created_by).toEqual({ key_id: other.id, key_name: `db2-${t}` });
    });

    it('pauses it when the key expires', async () => {
      const t = shortId();
      const owner = await newKey({
        name: `sched-exp-${t}`,
        role: 'operator',
        expires_at: new Date(Date.now() + 2000).toISOString(),
      });
      const s = (await call('POST', '/v1/schedules', owner.token, spec(t))).body;
      const paused = await waitFor(
        'the schedule to be paused',
        async () => {
          const now = (await call('GET', `/v1/schedules/${s.id}`, admin)).body;
          return now.paused ? now : undefined;
        },
        10_000,
      );
      expect(paused.paused_reason).toContain('expired');
    });
  });
});
