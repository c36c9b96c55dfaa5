import type { ServerResponse } from 'node:http';
import type { HttpReply } from './http.js';

/**
 * The headers of every page the API serves to browsers (/ui, /docs) and of each file such a
 * page loads: its content policy, no framing by any site (clickjacking: `X-Frame-Options` for
 * browsers that predate the policy's `frame-ancestors`), and no referrer.
 */
export function setPageHeaders(res: ServerResponse | HttpReply, policy: string): void {
  const set = (name: string, value: string) => ('raw' in res ? res.header(name, value) : res.setHeader(name, value));
  set('content-security-policy', policy);
  set('x-frame-options', 'DENY');
  set('referrer-policy', 'no-referrer');
}
