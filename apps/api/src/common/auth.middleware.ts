import type { NextFunction, Request, Response } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import { HttpStatus } from '@nestjs/common';
import { ApiError } from './errors.js';

/** A workflow's data space: a running task's lease token may be used there instead of the API token. */
const DATA_ROUTE = /^\/v1\/workflows\/[^/]+\/data(\/|$)/;
const LEASE_TOKEN = Symbol('leaseToken');

/**
 * With API_TOKEN set, every /v1 request needs `Authorization: Bearer <API_TOKEN>`:
 * 401 when the header is missing or malformed, 403 when the token is wrong. On the
 * data-space routes another bearer token is passed on as a lease token, which the
 * data controller checks against the running tasks of that workflow.
 */
export function bearerAuth(token: string) {
  const expected = digest(token);
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (!req.path.startsWith('/v1/')) return next();
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer (\S+)$/.exec(header) : null;
    if (!match) return next(new ApiError(HttpStatus.UNAUTHORIZED, 'missing Authorization: Bearer <token> header'));
    if (!timingSafeEqual(digest(match[1]), expected)) {
      if (DATA_ROUTE.test(req.path)) {
        (req as unknown as Record<symbol, string>)[LEASE_TOKEN] = match[1];
        return next();
      }
      return next(new ApiError(HttpStatus.FORBIDDEN, 'the bearer token is not valid'));
    }
    next();
  };
}

/** The lease token a data-space request authenticated with, if not the API token. */
export function leaseTokenOf(req: Request): string | undefined {
  return (req as unknown as Record<symbol, string | undefined>)[LEASE_TOKEN];
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
