import bodyParser from 'body-parser';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LIMITS } from '@tagflow/domain';
import { HttpStatus } from '@nestjs/common';
import { ApiError, badRequest } from './errors.js';

type Parse = (req: IncomingMessage, res: ServerResponse, next: (e?: unknown) => void) => void;
const parsers = new Map<number, Parse>();

/**
 * Reads and parses a request's JSON body (returned; undefined without one). Called by the guard once the caller is known
 * (never before: a request without a valid credential is refused with its body unread),
 * within `timeoutMs` (408 after: a client trickling a body does not hold the request).
 * `limit` bounds the body as parsed, after any gzip or deflate is inflated, so a small
 * compressed body cannot become a large one. Bodies that are not objects, and objects
 * nested deeper than LIMITS.jsonMaxDepth (+ a margin for the envelope), are refused
 * before anything recurses over them. Parser errors keep body-parser's status and type
 * (400, 413, 415), which the exception filter turns into messages.
 */
export async function readJsonBody(
  req: IncomingMessage,
  res: ServerResponse,
  limit: number,
  timeoutMs: number,
): Promise<unknown> {
  let parse = parsers.get(limit);
  if (!parse) parsers.set(limit, (parse = bodyParser.json({ limit, strict: true }) as Parse));
  let timer: NodeJS.Timeout | undefined;
  const read = new Promise<void>((resolve, reject) =>
    parse(req, res, (e?: unknown) =>
      e ? reject(e instanceof Error ? e : new Error('the request body could not be read')) : resolve(),
    ),
  );
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new ApiError(
            HttpStatus.REQUEST_TIMEOUT,
            `the request body did not arrive within ${timeoutMs / 1000} s`,
            undefined,
            'REQUEST_TIMEOUT',
          ),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([read, late]);
  } finally {
    clearTimeout(timer);
  }
  const body: unknown = (req as IncomingMessage & { body?: unknown }).body;
  if (body === undefined || body === null || (typeof body === 'object' && Object.keys(body).length === 0)) return body;
  if (typeof body !== 'object' || Array.isArray(body))
    throw badRequest('request body must be a JSON object', undefined, 'MALFORMED_BODY');
  const depth = LIMITS.jsonMaxDepth + 8;
  if (depthExceeds(body, depth))
    throw badRequest(`request body is nested deeper than ${depth} levels`, undefined, 'MALFORMED_BODY');
  return body;
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
