import { HttpException, HttpStatus } from '@nestjs/common';

/** The wire error: `{statusCode, error, message, details?}`. */
export class ApiError extends HttpException {
  constructor(status: HttpStatus, message: string, details?: unknown) {
    super(
      { statusCode: status, error: reasonPhrase(status), message, ...(details === undefined ? {} : { details }) },
      status,
    );
  }
}

export const notFound = (what: string, id: string) => new ApiError(HttpStatus.NOT_FOUND, `${what} ${id} not found`);
export const conflict = (message: string, details?: unknown) => new ApiError(HttpStatus.CONFLICT, message, details);
export const unprocessable = (message: string, details?: unknown) =>
  new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, message, details);
export const badRequest = (message: string, details?: unknown) =>
  new ApiError(HttpStatus.BAD_REQUEST, message, details);
export const tooLarge = (message: string) => new ApiError(HttpStatus.PAYLOAD_TOO_LARGE, message);

/** An error whose answer carries `Retry-After`: the same request may be sent again after it. */
export class RetryLater extends ApiError {
  constructor(
    status: HttpStatus,
    message: string,
    readonly retryAfterS: number,
  ) {
    super(status, message);
  }
}

/** 503: a part the request needs is away or full. */
export class Unavailable extends RetryLater {
  constructor(message: string, retryAfterS = 2) {
    super(HttpStatus.SERVICE_UNAVAILABLE, message, retryAfterS);
  }
}

/** 429: the credential sent more requests than its rate allows. */
export class RateLimited extends RetryLater {
  constructor(message: string, retryAfterS: number) {
    super(HttpStatus.TOO_MANY_REQUESTS, message, retryAfterS);
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

export function reasonPhrase(status: number): string {
  const phrases: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
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
export function itemRefusal(e: unknown): { status: number; message: string } {
  if (!(e instanceof HttpException) || e instanceof RetryLater || e.getStatus() >= 500) throw e;
  const body = e.getResponse() as { message?: unknown };
  return { status: e.getStatus(), message: typeof body?.message === 'string' ? body.message : e.message };
}
