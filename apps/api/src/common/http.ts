import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** A request as the API's guards, interceptors and controllers see it (Fastify's). */
export type HttpRequest = FastifyRequest;
/** An answer being made (Fastify's reply; `.raw` is Node's response, for streams). */
export type HttpReply = FastifyReply;
export type { IncomingMessage, ServerResponse };

/** The request's path as the client sent it, without its query. */
export function pathOf(req: HttpRequest): string {
  const q = req.url.indexOf('?');
  return q < 0 ? req.url : req.url.slice(0, q);
}

/** The route pattern the router matched (`/v1/tasks/:id`), not the path as the client spelled it; the path when none matched. */
export function routeOf(req: HttpRequest): string {
  return req.routeOptions?.url ?? pathOf(req);
}
