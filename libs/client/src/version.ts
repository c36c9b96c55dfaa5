/** The release, as in package.json; workers report it at registration, GET /docs shows it. */
export const TAGFLOW_VERSION = '0.1.0';
