import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** A request as the API's guards, interceptors and controllers see it (Fastify's). */
export type HttpRequest = FastifyRequest;
/** An answer being made (Fastify's reply; `.raw` is Node's response, for streams). */
export type HttpReply = FastifyReply;

/** The request's path as the client sent it, without its query. */
export function pathOf(req: HttpRequest): string {
  const q = req.url.indexOf('?');
  return q < 0 ? req.url : req.url.slice(0, q);
}

/** The request's `x-request-id` (at most 64 characters), or a new id: errors and logs name it. */
export function requestIdOf(req: HttpRequest): string {
  const header = req.headers['x-request-id'];
  return (typeof header === 'string' ? header.slice(0, 64) : undefined) ?? randomUUID();
}

/** The route pattern the router matched (`/v1/tasks/:id`), not the path as the client spelled it; the path when none matched. */
export function routeOf(req: HttpRequest): string {
  return req.routeOptions?.url ?? pathOf(req);
}

// Fastify's own reading of a Content-Type header (an internal module: the server answers 415,
// before any hook or guard, to a header this class finds invalid).
const { from: parseContentType } = createRequire(import.meta.url)('fastify/lib/content-type.js') as {
  from(this: void, header: string): { isValid: boolean };
};

/**
 * A Content-Type header the server would refuse with 415 before the guard ran is dropped, so
 * the request meets the guard like any other (401 without a credential); its body is then
 * read as having no type (not JSON), as it was before.
 */
export function dropInvalidContentType(req: HttpRequest): void {
  const header = req.headers['content-type'];
  if (typeof header === 'string' && !parseContentType(header).isValid) delete req.headers['content-type'];
}
