import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { getEventListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TagflowNetworkError } from './errors.js';
import { Transport } from './transport.js';

/** A loopback server: `/slow` answers after 400 ms, anything else at once. */
describe("Transport: a call's time limit and the caller's signal", () => {
  let server: http.Server;
  let url: string;
  let received = 0;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      received += 1;
      const answer = () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      if (req.url === '/slow') setTimeout(answer, 400);
      else answer();
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  });

  it('gives up on a call with no answer within timeoutMs, as a network error that says so', async () => {
    const transport = new Transport({ url, timeoutMs: 50, retry: { attempts: 1 } });
    const started = Date.now();
    const error = await transport.call('GET', '/slow').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TagflowNetworkError);
    expect((error as Error).message).toContain('no answer in time');
    expect(Date.now() - started).toBeLessThan(400);
  });

  it('takes a limit beyond what a timer holds (Infinity) as the longest one, not as none', async () => {
    const transport = new Transport({ url, timeoutMs: Infinity, retry: { attempts: 1 } });
    await expect(transport.call('GET', '/slow')).resolves.toEqual({ ok: true });
  });

  it("ends a call when the caller's signal aborts, with the signal's reason", async () => {
    const transport = new Transport({ url, retry: { attempts: 1 } });
    const caller = new AbortController();
    const call = transport.call('GET', '/slow', { signal: caller.signal });
    setTimeout(() => caller.abort(new Error('worker stopping')), 20);
    const error = await call.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TagflowNetworkError);
    expect((error as TagflowNetworkError).cause).toMatchObject({ message: 'worker stopping' });
    // Already aborted: not sent at all.
    const before = received;
    const sent = await transport.call('GET', '/x', { signal: caller.signal }).catch((e: unknown) => e);
    expect(sent).toBeInstanceOf(TagflowNetworkError);
    expect((sent as TagflowNetworkError).cause).toMatchObject({ message: 'worker stopping' });
    expect(received).toBe(before);
  });

  it("leaves no timer and no listener on the caller's signal behind a finished call (a worker's signal lives as long as it does)", async () => {
    // Over the network: the caller's signal.
    const transport = new Transport({ url, timeoutMs: 60_000 });
    const caller = new AbortController();
    for (let i = 0; i < 50; i++)
      await expect(transport.call('GET', '/x', { signal: caller.signal })).resolves.toEqual({ ok: true });
    await Promise.all(Array.from({ length: 50 }, () => transport.call('GET', '/x', { signal: caller.signal })));
    expect(getEventListeners(caller.signal, 'abort')).toHaveLength(0);
    // The time limit: a send that answers at once, under fake timers.
    jest.useFakeTimers();
    try {
      const answered = new Transport({
        url,
        timeoutMs: 60_000,
        send: () => Promise.resolve({ ok: true, status: 200, statusText: 'OK', text: () => Promise.resolve('{}') }),
      });
      await Promise.all(Array.from({ length: 20 }, () => answered.call('GET', '/x', { signal: caller.signal })));
      expect(jest.getTimerCount()).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });
});
