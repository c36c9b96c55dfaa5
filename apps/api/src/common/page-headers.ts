import type { Response } from 'express';

/**
 * The headers of every page the API serves to browsers (/ui, /docs) and of each file such a
 * page loads: its content policy, no framing by any site (clickjacking: `X-Frame-Options` for
 * browsers that predate the policy's `frame-ancestors`), and no referrer.
 */
export function setPageHeaders(res: Response, policy: string): void {
  res.setHeader('content-security-policy', policy);
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('referrer-policy', 'no-referrer');
}
