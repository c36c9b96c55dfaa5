import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TagflowClient, TagflowNetworkError } from '@tagflow/client';
import { keepAliveSend } from './keep-alive-send.js';

/**
 * A loopback server: `/slow` answers after 500 ms, `/cut` closes mid-answer, `/held` once
 * HELD of them wait, anything else echoes.
 */
describe('keepAliveSend (the worker client over node:http)', () => {
  let server: http.Server;
  let base: string;
  const connections: { closed: boolean }[] = [];
  const HELD = 260; // over node's 256 idle connections kept by default, and under a 1,024 files limit
  const held: (() => void)[] = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        if (req.url === '/cut') {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
          res.write('{"partial":');
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        }
        const answer = () => {
          res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ method: req.method, body, auth: req.headers.authorization ?? null }));
        };
        if (req.url === '/slow') setTimeout(answer, 500);
        else if (req.url === '/held') {
          // Answered together once HELD calls wait: that many connections are open at once.
          held.push(answer);
          if (held.length === HELD) held.splice(0).forEach((a) => a());
        } else answer();
      });
    });
    server.on('connection', (socket) => {
      const c = { closed: false };
      connections.push(c);
      socket.on('close', () => (c.closed = true));
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  });

  const call = (send: ReturnType<typeof keepAliveSend>, path: string, init: Partial<Parameters<typeof send>[1]> = {}) =>
    send(new URL(base + path), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer t' },
      body: '{"a":"é"}',
      signal: AbortSignal.timeout(5000),
      ...init,
    });

  it('sends the method, headers and body, answers status and text, and reuses one connection for calls in a row', async () => {
    const send = keepAliveSend(200);
    const before = connections.length;
    for (let i = 0; i < 3; i++) {
      const res = await call(send, '/echo');
      expect(res).toMatchObject({ ok: true, status: 200 });
      expect(JSON.parse(await res.text())).toEqual({ method: 'POST', body: '{"a":"é"}', auth: 'Bearer t' });
    }
    expect(connections.length - before).toBe(1);
    const missing = await call(send, '/missing');
    expect(missing).toMatchObject({ ok: false, status: 404, statusText: 'Not Found' });
  });

  it("keeps every connection of many calls at once for the next calls (more than node's 256 idle by default)", async () => {
    const send = keepAliveSend(2000);
    const before = connections.length;
    const round = () => Promise.all(Array.from({ length: HELD }, () => call(send, '/held')));
    expect((await round()).every((r) => r.status === 200)).toBe(true);
    expect(connections.length - before).toBe(HELD);
    expect((await round()).every((r) => r.status === 200)).toBe(true);
    expect(connections.length - before).toBe(HELD);
    expect(connections.slice(before).filter((c) => c.closed)).toHaveLength(0);
  });

  it('keeps a call that takes longer than the idle time, and closes a connection once idle that long', async () => {
    const send = keepAliveSend(200);
    const before = connections.length;
    expect((await call(send, '/slow')).status).toBe(200);
    const mine = connections[before];
    const deadline = Date.now() + 3000;
    while (!mine.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(mine.closed).toBe(true);
  });

  it('fails as fetch does: not sent when refused, the TimeoutError when the time is up, a TypeError when cut', async () => {
    const send = keepAliveSend(200);
    const closed = http.createServer();
    await new Promise<void>((done) => closed.listen(0, '127.0.0.1', done));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((done) => closed.close(done));
    const refused = new TagflowClient({ url: `http://127.0.0.1:${port}`, send, retry: { attempts: 1 } });
    const error = await refused.getWorkflow('wf_x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TagflowNetworkError);
    expect(error).toMatchObject({ notSent: true, message: expect.stringContaining('ECONNREFUSED') });

    await expect(call(send, '/slow', { signal: AbortSignal.timeout(50) })).rejects.toMatchObject({
      name: 'TimeoutError',
    });
    await expect(call(send, '/cut')).rejects.toBeInstanceOf(TypeError);
  });
});
