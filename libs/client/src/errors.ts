import type { ErrorBody } from './types.js';

/** The API answered with an error status. */
export class TagflowApiError extends Error {
  override readonly name = 'TagflowApiError';

  constructor(
    readonly status: number,
    message: string,
    readonly body: Partial<ErrorBody> | null,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: ${status} ${message}`);
  }

  get details(): unknown {
    return this.body?.details;
  }

  /** The error's stable code (`LEASE_STALE`, `WORKER_NOT_FOUND`, ...), or the status's general one from an older API. */
  get code(): string {
    return typeof this.body?.code === 'string' ? this.body.code : `HTTP_${this.status}`;
  }
}

/** The API could not be reached, or did not answer in time. */
export class TagflowNetworkError extends Error {
  override readonly name = 'TagflowNetworkError';

  constructor(
    message: string,
    readonly method: string,
    readonly path: string,
    /** True when the request cannot have reached the API (connection refused, DNS). */
    readonly notSent: boolean,
    override readonly cause?: unknown,
  ) {
    super(`${method} ${path}: ${message}`);
  }
}
