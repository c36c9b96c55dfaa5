import { HttpException, HttpStatus } from '@nestjs/common';
import { defaultErrorCode, type ErrorCode } from '@tagflow/domain';

/**
 * The wire error: `{statusCode, error, code, message, details?}`. `code` is stable for
 * clients to branch on (libs/domain error-codes.ts); without one, its status's general code.
 */
export class ApiError extends HttpException {
  constructor(status: HttpStatus, message: string, details?: unknown, code: ErrorCode = defaultErrorCode(status)) {
    super(
      { statusCode: status, error: reasonPhrase(status), code, message, ...(details === undefined ? {} : { details }) },
      status,
    );
  }
}

/** The not-found code of each kind of resource. */
const NOT_FOUND_CODES: Record<string, ErrorCode> = {
  workflow: 'WORKFLOW_NOT_FOUND',
  task: 'TASK_NOT_FOUND',
  worker: 'WORKER_NOT_FOUND',
  key: 'KEY_NOT_FOUND',
  schedule: 'SCHEDULE_NOT_FOUND',
  limit: 'LIMIT_NOT_FOUND',
};

export const notFound = (what: string, id: string) =>
  new ApiError(HttpStatus.NOT_FOUND, `${what} ${id} not found`, undefined, NOT_FOUND_CODES[what] ?? 'NOT_FOUND');
export const conflict = (message: string, details?: unknown, code?: ErrorCode) =>
  new ApiError(HttpStatus.CONFLICT, message, details, code);
export const unprocessable = (message: string, details?: unknown, code?: ErrorCode) =>
  new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, message, details, code);
export const badRequest = (message: string, details?: unknown, code?: ErrorCode) =>
  new ApiError(HttpStatus.BAD_REQUEST, message, details, code);
export const tooLarge = (message: string) => new ApiError(HttpStatus.PAYLOAD_TOO_LARGE, message);

/** An error whose answer carries `Retry-After`: the same request may be sent again after it. */
export class RetryLater extends ApiError {
  constructor(
    status: HttpStatus,
    message: string,
    readonly retryAfterS: number,
    code?: ErrorCode,
  ) {
    super(status, message, undefined, code);
  }
}

/** 503: a part the request needs is away or full. */
export class Unavailable extends RetryLater {
  constructor(message: string, retryAfterS = 2, code: ErrorCode = 'UNAVAILABLE') {
    super(HttpStatus.SERVICE_UNAVAILABLE, message, retryAfterS, code);
  }
}

/** 429: the credential sent more requests than its rate allows (or has as many parked as it may: TOO_MANY_WAITS). */
export class RateLimited extends RetryLater {
  constructor(message: string, retryAfterS: number, code: ErrorCode = 'RATE_LIMITED') {
    super(HttpStatus.TOO_MANY_REQUESTS, message, retryAfterS, code);
  }
}

/**
 * Resolves as `work` does, or rejects with `onLate()` once `ms` have passed (the work
 * goes on in the background: for calls into a part that stopped answering).
 */
export function withDeadline<T>(work: Promise<T>, ms: number, onLate: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onLate()), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/**
 * The body every error answer carries: `{statusCode, error, code, message, details?, request_id}`
 * (`code` defaults by status; `request_id` left out when none is given).
 */
export function errorBody(
  status: number,
  body: { code?: unknown; message?: unknown; [field: string]: unknown },
  requestId?: string,
): Record<string, unknown> {
  return {
    statusCode: status,
    error: reasonPhrase(status),
    code: typeof body.code === 'string' ? body.code : defaultErrorCode(status),
    ...body,
    request_id: requestId,
  };
}

export function reasonPhrase(status: number): string {
  const phrases: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    408: 'Request Timeout',
    409: 'Conflict',
    413: 'Payload Too Large',
    415: 'Unsupported Media Type',
    422: 'Unprocessable Entity',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    503: 'Service Unavailable',
  };
  return phrases[status] ?? 'Error';
}

/**
 * How one item of a batch (a report, a lease of a heartbeat) was refused: its status and
 * message, as the single route would answer. An error worth sending the whole request
 * again for (5xx, 503 with Retry-After, anything unexpected) is thrown on.
 */
export function itemRefusal(e: unknown): { status: number; code: string; message: string } {
  if (!(e instanceof HttpException) || e instanceof RetryLater || e.getStatus() >= 500) throw e;
  const body = e.getResponse() as { message?: unknown; code?: unknown };
  return {
    status: e.getStatus(),
    code: typeof body?.code === 'string' ? body.code : defaultErrorCode(e.getStatus()),
    message: typeof body?.message === 'string' ? body.message : e.message,
  };
}
