import { ArgumentsHost, Catch, HttpException, type ExceptionFilter } from '@nestjs/common';
import type { ErrorCode } from '@tagflow/domain';
import { isStaleStatement } from '@tagflow/persistence';
import { errorBody, RetryLater } from './errors.js';
import { pathOf, requestIdOf, type HttpReply, type HttpRequest } from './http.js';
import type { JsonLogger } from './logger.js';

/**
 * Every error leaves as `{statusCode, error, message, details?, request_id}`. Client
 * mistakes keep their 4xx; anything unknown becomes a plain 500 whose details stay in
 * the log under the same request id. Never a stack trace on the wire.
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: JsonLogger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const res = ctx.getResponse<HttpReply>();
    const req = ctx.getRequest<HttpRequest>();
    const requestId = requestIdOf(req);
    let status = 500;
    let body: Record<string, unknown>;

    // Nest wraps body-parser's errors in an HttpException with the original as cause.
    const parserError = isBodyParserError(exception)
      ? exception
      : exception instanceof HttpException && isBodyParserError(exception.cause)
        ? exception.cause
        : null;
    if (parserError) {
      status = parserError.status;
      body = { code: parserCode(parserError), message: describeParserError(parserError) };
    } else if (isServerError(exception)) {
      // The HTTP server's own refusals (a malformed URL, an over-long path parameter).
      status = exception.statusCode;
      body = { message: exception.message };
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      if (exception instanceof RetryLater) void res.header('Retry-After', String(exception.retryAfterS));
      const response = exception.getResponse();
      body = typeof response === 'string' ? { message: response } : { ...(response as Record<string, unknown>) };
      if (Array.isArray(body.message)) body.message = body.message.join('; ');
    } else if (unavailablePart(exception)) {
      // The database or Redis is away, busy or slow: the request may be sent again as it is.
      status = 503;
      void res.header('Retry-After', '2');
      this.logger.event('warn', 'http', 'a part is unavailable', {
        request_id: requestId,
        method: req.method,
        path: pathOf(req),
        part: unavailablePart(exception),
        error: String(exception),
      });
      body = {
        code: 'UNAVAILABLE',
        message: `the ${unavailablePart(exception)} is unavailable; send the request again shortly`,
      };
    } else {
      this.logger.event('error', 'http', 'unhandled error', {
        request_id: requestId,
        method: req.method,
        path: pathOf(req),
        error: exception instanceof Error ? exception.message : String(exception),
        stack: exception instanceof Error ? exception.stack : undefined,
      });
      body = { code: 'INTERNAL', message: 'internal server error' };
    }
    if (res.sent || res.raw.headersSent) return;
    // A request refused before its body was read (401, 429 from the guard): the connection
    // closes with the answer, so the rest of that body is never read either.
    if (!req.raw.complete) void res.header('connection', 'close');
    void res.status(status).send(errorBody(status, body, requestId));
  }
}

interface BodyParserError {
  status: number;
  type: string;
  message: string;
  limit?: number;
}

function describeParserError(e: BodyParserError): string {
  switch (e.type) {
    case 'entity.too.large':
      return `request body is larger than the limit of ${e.limit} bytes`;
    case 'entity.parse.failed':
      return `request body is not valid JSON: ${e.message}`;
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return `unsupported request body encoding: ${e.message}`;
    default:
      return e.message;
  }
}

function parserCode(e: BodyParserError): ErrorCode {
  if (e.type === 'entity.too.large') return 'TOO_LARGE';
  if (e.status === 415) return 'UNSUPPORTED_MEDIA_TYPE';
  return 'MALFORMED_BODY';
}

/** An error of the HTTP server itself (Fastify's `FST_ERR_...`), for a client's mistake. */
function isServerError(e: unknown): e is { statusCode: number; message: string } {
  const err = e as { statusCode?: unknown; code?: unknown } | null;
  return (
    !!err &&
    typeof err.statusCode === 'number' &&
    err.statusCode >= 400 &&
    err.statusCode < 500 &&
    typeof err.code === 'string' &&
    err.code.startsWith('FST_')
  );
}

function isBodyParserError(e: unknown): e is BodyParserError {
  const err = e as Partial<BodyParserError> | null;
  return (
    !!err && typeof err.status === 'number' && err.status >= 400 && err.status < 500 && typeof err.type === 'string'
  );
}

/** PostgreSQL error codes of a server away, restarting, full, or a statement given up on (timeouts, deadlocks). */
const PG_UNAVAILABLE = /^(08\d\d\d|53300|57P0[123]|57014|55P03|40001|40P01)$/;
const NET_UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
]);

/** ioredis's errors of a Redis (or Cluster, or Sentinel) that cannot be reached. */
const REDIS_ERROR_NAMES = new Set(['MaxRetriesPerRequestError', 'ClusterAllFailedError']);
const REDIS_AWAY =
  /^(Connection is closed|Stream isn't writeable|Too many Cluster redirections|Cluster is disconnect|Cluster isn't ready|None of startup nodes is available|Node is disconnected|All sentinels are unreachable)/;
/** Redis's own answers while a failover or a restart is under way (a demoted master, a shard without a master, a loading dump). */
const REDIS_REPLY_AWAY = /^(READONLY|CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN|NOREPLICAS) /;

/** Which part an error says is away ('database' or 'Redis'), or null for any other error. */
export function unavailablePart(e: unknown): 'database' | 'Redis' | null {
  if (!(e instanceof Error)) return null;
  // The work was committed before the error: sending the request again would do it twice.
  if ((e as { committed?: unknown }).committed === true) return null;
  const driver = (e as { driverError?: { code?: unknown } }).driverError;
  const raw = (e as { code?: unknown }).code ?? driver?.code;
  const code = typeof raw === 'string' ? raw : '';
  if (REDIS_ERROR_NAMES.has(e.name) || REDIS_AWAY.test(e.message)) return 'Redis';
  if (e.name === 'ReplyError' && REDIS_REPLY_AWAY.test(e.message)) return 'Redis';
  if (PG_UNAVAILABLE.test(code) || NET_UNAVAILABLE.has(code)) return 'database';
  // A prepared statement a migration made stale, or the server lost: renamed by then, it is
  // prepared afresh when the request is sent again.
  if (isStaleStatement(e)) return 'database';
  // TypeORM's answer to a statement of a transaction whose connection broke under it (its query
  // runner lets the connection go on the driver's 'error' event: a server restarting).
  if (e.name === 'QueryRunnerAlreadyReleasedError') return 'database';
  if (
    /Connection terminated|timeout exceeded when trying to connect|the database system is (starting up|shutting down)|Query read timeout|is not queryable/.test(
      e.message,
    )
  )
    return 'database';
  return null;
}
