import type { NextFunction, Request, Response } from 'express';
import { LIMITS } from '@tagflow/domain';
import { badRequest } from './errors.js';

/**
 * Refuses request bodies nested deeper than LIMITS.jsonMaxDepth (+ a margin for the
 * envelope) before anything recurses over them, and bodies that are not objects.
 */
export function jsonGuard(req: Request, _res: Response, next: NextFunction): void {
  const body: unknown = req.body;
  if (body === undefined || body === null || (typeof body === 'object' && Object.keys(body).length === 0)) return next();
  if (typeof body !== 'object' || Array.isArray(body)) return next(badRequest('request body must be a JSON object'));
  const limit = LIMITS.jsonMaxDepth + 8;
  if (depthExceeds(body, limit)) return next(badRequest(`request body is nested deeper than ${limit} levels`));
  next();
}

/** Iterative, so a hostile body cannot blow the stack here. */
export function depthExceeds(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}
