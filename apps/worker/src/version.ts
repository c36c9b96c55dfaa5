/** Reported to the API at registration. */
export const WORKER_VERSION = '0.1.0';
