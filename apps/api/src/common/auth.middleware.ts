import type { NextFunction, Request, Response } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import { HttpStatus } from '@nestjs/common';
import { ApiError } from './errors.js';

/**
 * With API_TOKEN set, every /v1 request needs `Authorization: Bearer <API_TOKEN>`:
 * 401 when the header is missing or malformed, 403 when the token is wrong.
 */
export function bearerAuth(token: string) {
  const expected = digest(token);
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (!req.path.startsWith('/v1/')) return next();
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer (\S+)$/.exec(header) : null;
    if (!match) return next(new ApiError(HttpStatus.UNAUTHORIZED, 'missing Authorization: Bearer <token> header'));
    if (!timingSafeEqual(digest(match[1]), expected)) return next(new ApiError(HttpStatus.FORBIDDEN, 'the bearer token is not valid'));
    next();
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
