import http from 'node:http';
import https from 'node:https';
import type { Send } from '@tagflow/client';

/**
 * How long an idle connection is kept for the next call (less when the server's Keep-Alive
 * header says it closes sooner), as fetch does: a connection the server or a proxy has already
 * closed is not reused.
 */
const IDLE_MS = 4000;

/**
 * The client's calls over node:http, every call of the process through one pool of
 * keep-alive connections: a call costs about a fifth of the CPU `fetch` spends on it (undici's
 * streams and its Response), which on a busy worker was most of its own CPU. It fails the way
 * `fetch` does, so the client's retry rules read it the same: a TypeError whose `cause` is the
 * system error (ECONNREFUSED: not sent), or the signal's reason once aborted. Unlike fetch it
 * does not follow redirects: the API answers its calls itself, and a 3xx from something in
 * between is an error to see, not to follow with a worker's key.
 *
 * Every idle connection is kept until it has been idle `idleMs` (node's agent keeps at most
 * 256 by default and closes the rest as their answers arrive): a process holding many
 * long-polls at once polls again on the connections it has instead of opening new ones.
 */
export function keepAliveSend(idleMs = IDLE_MS): Send {
  const pool = { keepAlive: true, timeout: idleMs, maxFreeSockets: Infinity };
  const plain = { agent: new http.Agent(pool), request: http.request };
  const tls = { agent: new https.Agent(pool), request: https.request };
  return (url, { method, headers, body, signal }) =>
    new Promise((resolve, reject) => {
      // As fetch: the signal's own reason (a TimeoutError, an AbortError) once aborted.
      const fail = (e: unknown) =>
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        reject(signal.aborted ? signal.reason : new TypeError('fetch failed', { cause: e }));
      if (signal.aborted) return fail(signal.reason);
      const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
      const { agent, request } = url.protocol === 'https:' ? tls : plain;
      const req = request(
        url,
        {
          method,
          agent,
          signal,
          headers: payload ? { ...headers, 'content-length': String(payload.length) } : headers,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', fail);
          res.on('close', () => {
            if (!res.complete) fail(new Error('the connection closed before the answer was complete'));
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            resolve({
              ok: status >= 200 && status < 300,
              status,
              statusText: res.statusMessage ?? '',
              text: () => Promise.resolve(text),
            });
          });
        },
      );
      req.on('error', fail);
      req.end(payload);
    });
}
