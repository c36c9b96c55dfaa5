import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHmac, timingSafeEqual } from 'node:crypto';
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
  /** When it arrived, in unix seconds. */
  at: number;
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
        this.got.push({ path: req.url ?? '', headers: req.headers, body, at: Math.floor(Date.now() / 1000) });
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

/** `Tagflow-Signature` as docs/flow-control.md says: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
const sign = (secret: string, body: string, t = Math.floor(Date.now() / 1000)) =>
  `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;

/** Checks a try's signature as a receiver would (the recipe of docs/flow-control.md); returns its time, or null. */
function verified(secret: string, got: Received): number | null {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(got.headers['tagflow-signature']));
  if (!m) return null;
  const expected = createHmac('sha256', secret).update(`${m[1]}.${got.body}`).digest();
  return timingSafeEqual(Buffer.from(m[2], 'hex'), expected) ? Number(m[1]) : null;
}

/** Whether a try was signed at the time it was sent: its `t` is its arrival's second (or the one before, or after on another clock). */
const signedWhenSent = (secret: string, got: Received) => {
  const t = verified(secret, got);
  return t !== null && Math.abs(got.at - t) <= 1;
};

/** examples/callback-receiver.mjs, started as docs/flow-control.md says, on a loopback port. */
async function exampleReceiver(secret: string) {
  const port = await freePort();
  const proc = track(
    spawn(process.execPath, ['examples/callback-receiver.mjs'], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', TAGFLOW_CALLBACK_SECRET: secret },
    }),
  );
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await waitFor('the receiver to listen', async () => out.includes('listening'));
  const url = `http://127.0.0.1:${port}/tagflow`;
  return {
    url,
    out: () => out,
    post: async (body: string, headers: Record<string, string>) =>
      (await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } })).status,
    stop: () => proc.kill(),
  };
}

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
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        callback: { url: receiver.url(`/wf-${tag}`), secret },
        tasks: [task('deploy', { tags: [tag], callback: { url: receiver.url(`/task-${tag}`), secret } })],
      }),
    );
    expect(wf.callback).toEqual({ url: receiver.url(`/wf-${tag}`), signed: true });
    const leased = await api.take([tag]);
    expect(JSON.stringify(leased)).not.toContain(secret);
    expect((await api.complete(leased, { version: '1.2.3' })).status).toBe(200);
    await waitFor('three tries of the task callback', async () => receiver.at(`/task-${tag}`).length >= 3, 15_000);
    const tries = receiver.at(`/task-${tag}`);
    expect(tries).toHaveLength(3);
    expect(new Set(tries.map((t) => t.body)).size).toBe(1);
    for (const t of tries) {
      expect(t.headers['tagflow-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect({ signedWhenSent: signedWhenSent(secret, t) }).toEqual({ signedWhenSent: true });
      expect(verified(`not-${secret}`, t)).toBeNull();
      expect(t.headers['tagflow-event']).toBe('task.finished');
      expect(t.headers['content-type']).toBe('application/json');
    }
    expect(new Set(tries.map((t) => t.headers['tagflow-delivery'])).size).toBe(1);
    const sent = JSON.parse(tries[0].body);
    expect(sent).toMatchObject({
      id: leased.id,
      name: 'deploy',
      state: 'SUCCESS',
      output: { version: '1.2.3' },
      callback: { signed: true },
    });
    expect(tries[0].body).not.toContain(secret);
    // The workflow's own callback: it finished too.
    await waitFor('the workflow callback', async () => receiver.at(`/wf-${tag}`).length >= 3, 15_000);
    expect(JSON.parse(receiver.at(`/wf-${tag}`)[2].body)).toMatchObject({
      id: wf.id,
      state: 'SUCCESS',
      task_counts: { SUCCESS: 1 },
    });
    await waitFor('both delivered', async () => {
      const items = (await api.get(`/v1/workflows/${wf.id}/callbacks`)).body.items;
      return items.length === 2 && items.every((d: { state: string }) => d.state === 'delivered');
    });
    const shown = (await api.get(`/v1/workflows/${wf.id}/callbacks`)).body.items.find(
      (d: { task_id: string | null }) => d.task_id === leased.id,
    );
    expect(shown).toMatchObject({
      event: 'task.finished',
      state: 'delivered',
      attempts: 3,
      last_status: 204,
      signed: true,
    });
    expect(shown.history.map((h: { status: number }) => h.status)).toEqual([500, 500, 204]);
    expect(JSON.stringify(shown)).not.toContain(secret);
  });

  it('announces a failed task and an unsigned callback the same way', async () => {
    const tag = `cbf-${uniq()}`;
    receiver.failFirst = 0;
    await api.createWorkflow(
      workflow({ tasks: [task('flaky', { tags: [tag], callback: { url: receiver.url(`/fail-${tag}`) } })] }),
    );
    expect(
      (await api.fail(await api.take([tag]), { message: 'disk full', code: 'ENOSPC', retryable: false })).status,
    ).toBe(200);
    await waitFor('the callback of the failure', async () => receiver.at(`/fail-${tag}`).length >= 1);
    const [got] = receiver.at(`/fail-${tag}`);
    expect(got.headers['tagflow-signature']).toBeUndefined();
    expect(JSON.parse(got.body)).toMatchObject({
      name: 'flaky',
      state: 'ERROR',
      error: { code: 'ENOSPC', message: 'disk full' },
    });
  });

  it('still delivers after the API is killed (kill -9) between the state change and the delivery', async () => {
    const downReceiver = new Receiver(await freePort()); // not listening yet: nothing can be delivered before the kill
    // Its dispatcher looks once at start, then once a minute: no try is made before the kill,
    // so the delivery can only come from what the finishing transaction wrote.
    const own = await Api.start({ env: { ...FAST_RETRIES, RECONCILE_INTERVAL_MS: '60000' } });
    try {
      const tag = `cbk-${uniq()}`;
      const r = await own.post('/v1/tasks', {
        tags: [tag],
        action: { type: 'noop' },
        callback: { url: downReceiver.url('/after-crash'), secret: 'k' },
      });
      expect(r.status).toBe(201);
      expect((await own.complete(await own.take([tag]))).status).toBe(200);
      await own.kill9();
      await downReceiver.start();
      const again = await Api.start({ databaseUrl: own.databaseUrl, prefix: own.prefix, env: FAST_RETRIES });
      try {
        await waitFor(
          'the callback after the restart',
          async () => downReceiver.at('/after-crash').length >= 1,
          20_000,
        );
        const [got] = downReceiver.at('/after-crash');
        expect(JSON.parse(got.body)).toMatchObject({ id: r.body.id, state: 'SUCCESS' });
        // Signed at the time of its one try, by the restarted API.
        expect(signedWhenSent('k', got)).toBe(true);
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

  it('signs each try anew, at the time it is sent', async () => {
    // Tries at least 1.25 s apart: each falls in a later second than the one before.
    const own = await Api.start({
      env: { ...FAST_RETRIES, CALLBACK_RETRY_BASE_MS: '2500', CALLBACK_RETRY_MAX_MS: '2500' },
    });
    try {
      const tag = `cbt-${uniq()}`;
      receiver.failFirst = 1;
      await own.post('/v1/tasks', {
        tags: [tag],
        action: { type: 'noop' },
        callback: { url: receiver.url(`/again-${tag}`), secret: 'k2' },
      });
      expect((await own.complete(await own.take([tag]))).status).toBe(200);
      await waitFor('a second try', async () => receiver.at(`/again-${tag}`).length >= 2, 15_000);
      const [first, second] = receiver.at(`/again-${tag}`);
      expect([signedWhenSent('k2', first), signedWhenSent('k2', second)]).toEqual([true, true]);
      expect(verified('k2', second)!).toBeGreaterThan(verified('k2', first)!);
      expect(second.headers['tagflow-delivery']).toBe(first.headers['tagflow-delivery']);
    } finally {
      receiver.failFirst = 0;
      await own.stop();
    }
  });

  it('the receiver of docs/flow-control.md (examples/callback-receiver.mjs) takes a signed callback and refuses a forged one', async () => {
    const engine = await exampleReceiver('engine-secret');
    try {
      const tag = `cbr-${uniq()}`;
      const r = await api.post('/v1/tasks', {
        tags: [tag],
        action: { type: 'noop' },
        callback: { url: engine.url, secret: 'engine-secret' },
      });
      expect((await api.complete(await api.take([tag]), {}, { exit_code: 0 })).status).toBe(200);
      await waitFor('the receiver to verify it', async () =>
        engine.out().includes(`verified task.finished ${r.body.id} SUCCESS exit 0`),
      );
      const body = JSON.stringify({ id: r.body.id, state: 'ERROR' });
      for (const signature of [
        sign('guess', body),
        sign('engine-secret', '{}'),
        `sha256=${createHmac('sha256', 'engine-secret').update(body).digest('hex')}`,
        '',
      ]) {
        const forged = await engine.post(body, { 'tagflow-signature': signature, 'tagflow-delivery': `x-${uniq()}` });
        expect({ signature, status: forged }).toEqual({ signature, status: 401 });
      }
      expect(engine.out()).not.toContain(`${r.body.id} ERROR`);
    } finally {
      engine.stop();
    }
  });

  it('the example receiver refuses a replayed delivery: an old one, and a repeat of one it took', async () => {
    const engine = await exampleReceiver('replayed-secret');
    try {
      // A genuine delivery, caught on its way (by the recording receiver).
      const tag = `cbp-${uniq()}`;
      const r = await api.post('/v1/tasks', {
        tags: [tag],
        action: { type: 'noop' },
        callback: { url: receiver.url(`/caught-${tag}`), secret: 'replayed-secret' },
      });
      expect((await api.complete(await api.take([tag]), {}, { exit_code: 0 })).status).toBe(200);
      const caught = await waitFor('the delivery', async () => receiver.at(`/caught-${tag}`)[0]);
      const headers = (over: Record<string, string> = {}) => ({
        'tagflow-signature': String(caught.headers['tagflow-signature']),
        'tagflow-event': 'task.finished',
        'tagflow-delivery': String(caught.headers['tagflow-delivery']),
        ...over,
      });
      const verifiedLines = () =>
        engine
          .out()
          .split('\n')
          .filter((l) => l.startsWith(`verified task.finished ${r.body.id} `));
      // Passed on at once, it is taken; sent again, even under another delivery id, it is not acted on twice.
      expect(await engine.post(caught.body, headers())).toBe(204);
      expect(await engine.post(caught.body, headers({ 'tagflow-delivery': 'another-id' }))).toBe(204);
      // The same delivery signed 6 minutes ago (what a copy taken then carries), or 6 minutes ahead: refused.
      const now = Math.floor(Date.now() / 1000);
      for (const t of [now - 360, now + 360]) {
        const status = await engine.post(
          caught.body,
          headers({ 'tagflow-signature': sign('replayed-secret', caught.body, t), 'tagflow-delivery': `fresh-${t}` }),
        );
        expect({ t: t - now, status }).toEqual({ t: t - now, status: 401 });
      }
      // Within the 5 minutes, a delivery not seen before is taken.
      const other = JSON.stringify({ ...JSON.parse(caught.body), id: '00000000-0000-4000-8000-000000000001' });
      expect(
        await engine.post(
          other,
          headers({ 'tagflow-signature': sign('replayed-secret', other, now - 240), 'tagflow-delivery': 'other' }),
        ),
      ).toBe(204);
      // Its line comes after those of everything sent before it: what the receiver did with them is all there.
      await waitFor('the other delivery taken', async () =>
        engine.out().includes('verified task.finished 00000000-0000-4000-8000-000000000001 SUCCESS'),
      );
      expect(verifiedLines()).toHaveLength(1);
      expect(engine.out().match(/refused: signed more than 5 minutes from now/g)).toHaveLength(2);
    } finally {
      engine.stop();
    }
  });

  it('gives up after CALLBACK_GIVE_UP_S and records it', async () => {
    const own = await Api.start({ env: { ...FAST_RETRIES, CALLBACK_GIVE_UP_S: '2' } });
    try {
      const tag = `cbg-${uniq()}`;
      receiver.failFirst = 1000;
      const wf = await own.createWorkflow(
        workflow({ tasks: [task('x', { tags: [tag], callback: { url: receiver.url(`/never-${tag}`) } })] }),
      );
      expect((await own.complete(await own.take([tag]))).status).toBe(200);
      const failed = await waitFor(
        'the delivery given up',
        async () => {
          const [d] = (await own.get(`/v1/workflows/${wf.id}/callbacks`)).body.items;
          return d?.state === 'failed' ? d : null;
        },
        15_000,
      );
      expect(failed.attempts).toBeGreaterThanOrEqual(2);
      expect(failed).toMatchObject({
        last_status: 500,
        last_error: 'the receiver answered 500',
        next_attempt_at: null,
      });
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
    for (const url of [
      'http://127.0.0.1:8080/v1/keys',
      'http://localhost/',
      'http://[::1]/x',
      'http://169.254.169.254/latest/meta-data',
      'http://2130706433/',
      'http://[::ffff:127.0.0.1]/',
      'http://0.0.0.0:22/',
    ]) {
      const r = await api.post('/v1/workflows', workflow({ name, tasks: [task('t', { callback: { url } })] }));
      expect({ url, status: r.status }).toEqual({ url, status: 400 });
      expect(r.body.message).toContain('tasks.0.callback.url');
      const w = await api.post('/v1/workflows', workflow({ name, callback: { url } }));
      expect({ url, status: w.status }).toEqual({ url, status: 400 });
    }
    for (const url of [
      'ftp://example.com/x',
      'not a url',
      'http://user:pw@example.com/',
      'http://example.com/a\u0000b',
    ]) {
      const r = await api.post('/v1/tasks', { action: { type: 'noop' }, callback: { url } });
      expect({ url, status: r.status }).toEqual({ url, status: 400 });
      expect(JSON.stringify(r.body)).toContain('callback.url');
    }
    const nul = await api.post('/v1/tasks', {
      action: { type: 'noop' },
      callback: { url: 'https://example.com/', secret: 'a\u0000b' },
    });
    expect(nul.status).toBe(400);
    expect(JSON.stringify(nul.body)).toContain('callback.secret');
    expect((await api.get(`/v1/workflows?name=${name}`)).body.items).toEqual([]);
  });

  it('refuses loopback and link-local IPv4 addresses written as IPv6 (IPv4-compatible, NAT64, 6to4, translated), naming the field', async () => {
    const name = `ssrf6-${uniq()}`;
    for (const url of [
      'http://[::127.0.0.1]/',
      'http://[64:ff9b::7f00:1]:8080/v1/keys',
      'http://[64:ff9b::169.254.169.254]/latest/meta-data',
      'http://[2002:7f00:1::1]/',
      'http://[::ffff:0:127.0.0.1]/',
      'http://[64:ff9b:1::7f00:1]/',
    ]) {
      const r = await api.post('/v1/workflows', workflow({ name, tasks: [task('t', { callback: { url } })] }));
      expect({ url, status: r.status, fields: r.body.details?.map((d: { field: string }) => d.field) }).toEqual({
        url,
        status: 400,
        fields: ['tasks.0.callback.url'],
      });
      const single = await api.post('/v1/tasks', { action: { type: 'noop' }, callback: { url } });
      expect({ url, status: single.status }).toEqual({ url, status: 400 });
      expect(single.body.message).toContain('callback.url');
    }
    // The IPv4 address a NAT64 address stands for decides: a public one is called.
    expect(
      (await api.post('/v1/workflows', workflow({ name, callback: { url: 'http://[64:ff9b::808:808]/' } }))).status,
    ).toBe(201);
    expect((await api.get(`/v1/workflows?name=${name}`)).body.items).toHaveLength(1);
  });

  it('refuses to deliver to a name that resolves to loopback, and records why', async () => {
    const tag = `ssrf-${uniq()}`;
    // This machine's own name: /etc/hosts maps it to a loopback address (127.0.1.1 on Debian).
    const name = hostname();
    const resolved = await lookup(name);
    expect(resolved.address).toMatch(/^127\./);
    const wf = await api.createWorkflow(
      workflow({ tasks: [task('t', { tags: [tag], callback: { url: `http://${name}:${await freePort()}/` } })] }),
    );
    expect((await api.complete(await api.take([tag]))).status).toBe(200);
    const d = await waitFor('the delivery refused', async () => {
      const [item] = (await api.get(`/v1/workflows/${wf.id}/callbacks`)).body.items;
      return item?.state === 'failed' ? item : null;
    });
    expect(d.attempts).toBe(1);
    expect(d.last_error).toContain(`${name} resolves to ${resolved.address}, a loopback address`);
  });
});
