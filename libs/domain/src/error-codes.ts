/**
 * The stable `code` of every error the API answers, next to its `message` (which is for
 * people and may change). Clients branch on the code. A code names what went wrong, not
 * the status: several codes share a status, and a status with no more particular code
 * answers the general one of its row.
 */
export const ERROR_CODES = {
  // 400
  VALIDATION_FAILED: 'a field of the request is missing or malformed; `details` names each',
  MALFORMED_BODY: 'the request body is not JSON, or not a JSON object',
  // 401
  UNAUTHENTICATED: 'no credential, or one that is not a key nor a live lease of this workflow',
  KEY_REVOKED: 'the key was revoked (a request it held open ends with this)',
  KEY_EXPIRED: 'the key expired (a request it held open ends with this)',
  // 403
  FORBIDDEN: 'the caller may not do this',
  ROLE_FORBIDDEN: "the key's role may not call this route",
  GRANT_MISSING: "the key's tag grants do not cover a tag the request touches; `details.tag` names it",
  NAMESPACE_FORBIDDEN: 'the key may not act in the namespace asked for',
  // 404
  NOT_FOUND: 'no such route or resource',
  WORKFLOW_NOT_FOUND: 'no such workflow in this namespace',
  TASK_NOT_FOUND: 'no such task in this namespace',
  WORKER_NOT_FOUND: 'no such worker in this namespace (a worker registers again)',
  KEY_NOT_FOUND: 'no such key',
  SCHEDULE_NOT_FOUND: 'no such schedule in this namespace',
  LIMIT_NOT_FOUND: 'no such concurrency limit in this namespace',
  DATA_PENDING: 'the data key is not written yet (a blocking read whose wait ended)',
  // 408
  REQUEST_TIMEOUT: 'the request body did not arrive in time',
  // 409
  CONFLICT: 'the resource is in a state that does not allow this; `details.state` names it',
  LEASE_STALE: "the lease token is not the task's current lease: the report changes nothing",
  LEASE_ENDED: 'the lease has ended (reported, cancelled, or the task moved on)',
  LEASE_EXPIRED: 'the lease expired before the report arrived: the attempt counts as failed',
  WORKER_STOPPING: 'the worker handed back a task as stopping: it registers again before polling',
  IDEMPOTENCY_IN_PROGRESS: 'a request with this Idempotency-Key is still being answered',
  // 413, 415, 422
  TOO_LARGE: 'the body, or a part of it, is over its limit',
  UNSUPPORTED_MEDIA_TYPE: 'the body is in an encoding or charset the API does not read',
  UNPROCESSABLE: 'the request is well-formed but cannot be applied (a cycle, an unknown dependency, a limit)',
  IDEMPOTENCY_MISMATCH: 'the Idempotency-Key was used for another request',
  // 429
  RATE_LIMITED: 'the credential (or, without one, the client address) is over its rate; see Retry-After',
  TOO_MANY_WAITS: 'the credential has the most parked requests or followed streams it may have',
  // 5xx
  INTERNAL: 'an unexpected error (logged under request_id)',
  UNAVAILABLE: 'a part the request needs (the database, Redis) is away or busy; send it again after Retry-After',
  SHUTTING_DOWN: 'this API replica is stopping; send the request again (another replica answers)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The code of an error that names none more particular. */
export function defaultErrorCode(status: number): ErrorCode {
  const byStatus: Record<number, ErrorCode> = {
    400: 'VALIDATION_FAILED',
    401: 'UNAUTHENTICATED',
    403: 'FORBIDDEN',
    404: 'NOT_FOUND',
    408: 'REQUEST_TIMEOUT',
    409: 'CONFLICT',
    413: 'TOO_LARGE',
    415: 'UNSUPPORTED_MEDIA_TYPE',
    422: 'UNPROCESSABLE',
    429: 'RATE_LIMITED',
    503: 'UNAVAILABLE',
  };
  return byStatus[status] ?? (status >= 500 ? 'INTERNAL' : 'VALIDATION_FAILED');
}
