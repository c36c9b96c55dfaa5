import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHmac } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { hostname } from 'node:os';
import { spawn } from 'node:child_process';
import { Api, freePort, task, track, waitFor, workflow } from './support/harness.js';

const uniq = () => Math.random().toString(36).slice(2, 10);

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A callback receiver on loopback: records each POST; `failFirst` answers 500 to that many first. */
class Receiver {
  readonly got: Received[] = [];
  failFirst = 0;
  private server: Server | null = null;

  constructor(readonly port: number) {}

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        this.got.push({ path: req.url ?? '', headers: req.headers, body });
        const fail = this.got.filter((g) => g.path === req.url).length <= this.failFirst;
        res.writeHead(fail ? 500 : 204).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  at(path: string): Received[] {
    return this.got.filter((g) => g.path === path);
  }
}

const sign = (secret: string, body: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

const FAST_RETRIES = { CALLBACK_ALLOW_PRIVATE: '1', CALLBACK_RETRY_BASE_MS: '200', CALLBACK_RETRY_MAX_MS: '1000' };

describe('signed callbacks', () => {
  let api: Api;
  let receiver: Receiver;
  beforeAll(async () => {
    receiver = new Receiver(await freePort());
    await receiver.start();
    api = await Api.start({ env: FAST_RETRIES });
  });
  afterAll(async () => {
    await api?.stop();
    await receiver?.stop();
  });

  it('a receiver that fails twice, then succeeds, gets the same signed body three times; the tries are shown', async () => {
    const tag = `cb-${uniq()}`;
    const secret = `s3cret-${uniq()}`;
    receiver.failFirst = 2;
    const wf = await api.createWorkflow(workflow({
      sealed: true,
      callback: { url: receiver.url(`/wf-${tag}`), secret },
      tasks: [task('deploy', { tags: [tag], callback: { url: receiver.url(`/task-${tag}`), secret } })],
    }));
    expect(wf.callback).toEqual({ url: receiver.url(`/wf-${tag}`), signed: true });
    const leased = await api.take([tag]);
    expect(JSON.stringify(leased)).not.toContain(secret);
    expect((await api.complete(leased, { version: '1.2.3' })).status).toBe(200);
    await waitFor('three tries of the task callback', async () => receiver.at(`/task-${tag}`).length >= 3, 15_000);
    const tries = receiver.at(`/task-${tag}`);
    expect(tries).toHaveLength(3);
    expect(new Set(tries.map((t) => t.body)).size).toBe(1);
    for (const t of tries) {
      expect(t.headers['tagflow-signature']).toBe(sign(secret, t.body));
      expect(t.headers['tagflow-event']).toBe('task.finished');
      expect(t.headers['content-type']).toBe('application/json');
    }
    expect(new Set(tries.map((t) => t.headers['tagflow-delivery'])).size).toBe(1);
    const sent = JSON.parse(tries[0].body);
    expect(sent).toMatchObject({ id: leased.id, name: 'deploy', state: 'SUCCESS', output: { version: '1.2.3' }, callback: { signed: true } });
    expect(tries[0].body).not.toContain(secret);
    // The workflow's own callback: it finished too.
    await waitFor('the workflow callback', async () => receiver.at(`/wf-${tag}`).length >= 3, 15_000);
    expect(JSON.parse(receiver.at(`/wf-${tag}`)[2].body)).toMatchObject({ id: wf.id, state: 'SUCCESS', task_counts: { SUCCESS: 1 } });
    await waitFor('both delivered', async () => {
      const items = (await api.get(`/v1/workflows/${wf.id}/callbacks`)).body.items;
      return items.length === 2 && items.every((d: { state: string }) => d.state === 'delivered');
    });
    const shown = (await api.get(`/v1/workflows/${wf.id}/callbacks`)).body.items.find((d: { task_id: string | null }) => d.task_id === leased.id);
    expect(shown).toMatchObject({ event: 'task.finished', state: 'delivered', attempts: 3, last_status: 204, signed: true });
    expect(shown.history.map((h: { status: number }) => h.status)).toEqual([500, 500, 204]);
    expect(JSON.stringify(shown)).not.toContain(secret);
  });

  it('announces a failed task and an unsigned callback the same way', async () => {
    const tag = `cbf-${uniq()}`;
    receiver.failFirst = 0;
    await api.createWorkflow(workflow({ tasks: [task('flaky', { tags: [tag], callback: { url: receiver.url(`/fail-${tag}`) } })] }));
    expect((await api.fail(await api.take([tag]), { message: 'disk full', code: 'ENOSPC', retryable: false })).status).toBe(200);
    await waitFor('the callback of the failure', async () => receiver.at(`/fail-${tag}`).length >= 1);
    const [got] = receiver.at(`/fail-${tag}`);
    expect(got.headers['tagflow-signature']).toBeUndefined();
    expect(JSON.parse(got.body)).toMatchObject({ name: 'flaky', state: 'ERROR', error: { code: 'ENOSPC', message: 'disk full' } });
  });

  it('still delivers after the API is killed (kill -9) between the state change and the delivery', async () => {
    const downReceiver = new Receiver(await freePort()); // not listening yet: nothing can be delivered before the kill
    // Its dispatcher looks once at start, then once a minute: no try is made before the kill,
    // so the delivery can only come from what the finishing transaction wrote.
    const own = await Api.start({ env: { ...FAST_RETRIES, RECONCILE_INTERVAL_MS: '60000' } });
    try {
      const tag = `cbk-${uniq()}`;
      const r = await own.post('/v1/tasks', { tags: [tag], action: { type: 'noop' }, callback: { url: downReceiver.url('/after-crash'), secret: 'k' } });
      expect(r.status).toBe(201);
      expect((await own.complete(await own.take([tag]))).status).toBe(200);
      await own.kill9();
      await downReceiver.start();
      const again = await Api.start({ databaseUrl: own.databaseUrl, prefix: own.prefix, env: FAST_RETRIES });
      try {
        await waitFor('the callback after the restart', async () => downReceiver.at('/after-crash').length >= 1, 20_000);
        const [got] = downReceiver.at('/after-crash');
        expect(JSON.parse(got.body)).toMatchObject({ id: r.body.id, state: 'SUCCESS' });
        expect(got.headers['tagflow-signature']).toBe(sign('k', got.body));
        // Its one and only try came from the restarted API.
        const [delivery] = (await again.get(`/v1/workflows/${r.body.workflow_id}/callbacks`)).body.items;
        expect(delivery.history.map((h: { status: number }) => h.status)).toEqual([204]);
      } finally {
        await again.stop();
      }
    } finally {
      await own.kill9();
      await downReceiver.stop();
    }
  });

  it('the receiver of docs/flow-control.md (examples/callback-receiver.mjs) takes a signed callback and refuses a forged one', async () => {
    const port = await freePort();
    const proc = track(spawn(process.execPath, ['examples/callback-receiver.mjs'], { env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', TAGFLOW_CALLBACK_SECRET: 'engine-secret' } }));
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitFor('the receiver to listen', async () => out.includes('listening'));
      const tag = `cbr-${uniq()}`;
      const r = await api.post('/v1/tasks', { tags: [tag], action: { type: 'noop' }, callback: { url: `http://127.0.0.1:${port}/tagflow`, secret: 'engine-secret' } });
      expect((await api.complete(await api.take([tag]), {}, { exit_code: 0 })).status).toBe(200);
      await waitFor('the receiver to verify it', async () => out.includes(`verified task.finished ${r.body.id} SUCCESS exit 0`));
      const forged = await fetch(`http://127.0.0.1:${port}/tagflow`, {
        method: 'POST', body: JSON.stringify({ id: r.body.id, state: 'ERROR' }), headers: { 'tagflow-signature': sign('guess', '{}'), 'tagflow-delivery': 'x' },
      });
      expect(forged.status).toBe(401);
      expect(out).not.toContain(`${r.body.id} ERROR`);
    } finally {
      proc.kill();
    }
  });

  it('gives up after CALLBACK_GIVE_UP_S and records it', async () => {
    const own = await Api.start({ env: { ...FAST_RETRIES, CALLBACK_GIVE_UP_S: '2' } });
    try {
      const tag = `cbg-${uniq()}`;
      receiver.failFirst = 1000;
      const wf = await own.createWorkflow(workflow({ tasks: [task('x', { tags: [tag], callback: { url: receiver.url(`/never-${tag}`) } })] }));
      expect((await own.complete(await own.take([tag]))).status).toBe(200);
      const failed = await waitFor('the delivery given up', async () => {
        const [d] = (await own.get(`/v1/workflows/${wf.id}/callbacks`)).body.items;
        return d?.state === 'failed' ? d : null;
      }, 15_000);
      expect(failed.attempts).toBeGreaterThanOrEqual(2);
      expect(failed).toMatchObject({ last_status: 500, last_error: 'the receiver answered 500', next_attempt_at: null });
      const tries = receiver.at(`/never-${tag}`).length;
      await new Promise((r) => setTimeout(r, 1500)); // no try comes after giving up
      expect(receiver.at(`/never-${tag}`)).toHaveLength(tries);
    } finally {
      receiver.failFirst = 0;
      await own.stop();
    }
  });
});

describe('callback addresses', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start(); // CALLBACK_ALLOW_PRIVATE unset: loopback and link-local are refused
  });
  afterAll(async () => {
    await api?.stop();
  });

  it('refuses loopback and link-local callback hosts at submission, naming the field, and creates nothing', async () => {
    const name = `ssrf-${uniq()}`;
    for (const url of ['http://127.0.0.1:8080/v1/keys', 'http://localhost/', 'http://[::1]/x', 'http://169.254.169.254/latest/meta-data', 'http://2130706433/', 'http://[::ffff:127.0.0.1]/', 'http://0.0.0.0:22/']) {
      const r = await api.post('/v1/workflows', workflow({ name, tasks: [task('t', { callback: { url } })] }));
      expect({ url, status: r.status }).toEqual({ url, status: 400 });
      expect(r.body.message).toContain('tasks.0.callback.url');
      const w = await api.post('/v1/workflows', workflow({ name, callback: { url } }));
      expect({ url, status: w.status }).toEqual({ url, status: 400 });
    }
    for (const url of ['ftp://example.com/x', 'not a url', 'http://user:pw@example.com/', 'http://example.com/a\u0000b']) {
      const r = await api.post('/v1/tasks', { action: { type: 'noop' }, callback: { url } });
      expect({ url, status: r.status }).toEqual({ url, status: 400 });
      expect(JSON.stringify(r.body)).toContain('callback.url');
    }
    const nul = await api.post('/v1/tasks', { action: { type: 'noop' }, callback: { url: 'https://example.com/', secret: 'a\u0000b' } });
    expect(nul.status).toBe(400);
    expect(JSON.stringify(nul.body)).toContain('callback.secret');
    expect((await api.get(`/v1/workflows?name=${name}`)).body.items).toEqual([]);
  });

  it('refuses loopback and link-local IPv4 addresses written as IPv6 (IPv4-compatible, NAT64, 6to4, translated), naming the field', async () => {
    const name = `ssrf6-${uniq()}`;
    for (const url of ['http://[::127.0.0.1]/', 'http://[64:ff9b::7f00:1]:8080/v1/keys', 'http://[64:ff9b::169.254.169.254]/latest/meta-data', 'http://[2002:7f00:1::1]/', 'http://[::ffff:0:127.0.0.1]/', 'http://[64:ff9b:1::7f00:1]/']) {
      const r = await api.post('/v1/workflows', workflow({ name, tasks: [task('t', { callback: { url } })] }));
      expect({ url, status: r.status, fields: r.body.details?.map((d: { field: string }) => d.field) }).toEqual({ url, status: 400, fields: ['tasks.0.callback.url'] });
      const single = await api.post('/v1/tasks', { action: { type: 'noop' }, callback: { url } });
      expect({ url, status: single.status }).toEqual({ url, status: 400 });
      expect(single.body.message).toContain('callback.url');
    }
    // The IPv4 address a NAT64 address stands for decides: a public one is called.
    expect((await api.post('/v1/workflows', workflow({ name, callback: { url: 'http://[64:ff9b::808:808]/' } }))).status).toBe(201);
    expect((await api.get(`/v1/workflows?name=${name}`)).body.items).toHaveLength(1);
  });

  it('refuses to deliver to a name that resolves to loopback, and records why', async () => {
    const tag = `ssrf-${uniq()}`;
    // This machine's own name: /etc/hosts maps it to a loopback address (127.0.1.1 on Debian).
    const name = hostname();
    const resolved = await lookup(name);
    expect(resolved.address).toMatch(/^127\./);
    const wf = await api.createWorkflow(workflow({ tasks: [task('t', { tags: [tag], callback: { url: `http://${name}:${await freePort()}/` } })] }));
    expect((await api.complete(await api.take([tag]))).status).toBe(200);
    const d = await waitFor('the delivery refused', async () => {
      const [item] = (await api.get(`/v1/workflows/${wf.id}/callbacks`)).body.items;
      return item?.state === 'failed' ? item : null;
    });
    expect(d.attempts).toBe(1);
    expect(d.last_error).toContain(`${name} resolves to ${resolved.address}, a loopback address`);
  });
});
