/** Bounds on what clients may send. Shared by the API's validation and the client SDK. */
export const LIMITS = {
  nameMaxLength: 128,
  namePattern: /^[A-Za-z0-9_.-]+$/,
  tagsPerItem: 32,
  /** Reports in one `POST /v1/tasks/report`. */
  reportsPerRequest: 100,
  /** Leases in one worker heartbeat (`POST /v1/workers/:id/heartbeat`). */
  leasesPerHeartbeat: 100,
  tagMaxLength: 64,
  tagPattern: /^[A-Za-z0-9_.:/=-]+$/,
  /** A poll's capabilities: tags, or `*` (every task; only for credentials granted `*`). */
  capabilityPattern: /^(\*|[A-Za-z0-9_.:/=-]+)$/,
  /** A key's tag grant: a tag, a prefix ending in `*`, or `*` alone (length: tagMaxLength). */
  tagGrantPattern: /^(\*|[A-Za-z0-9_.:/=-]+\*?)$/,
  keyNamePattern: /^[A-Za-z0-9_.:@ -]{1,128}$/,
  /** An API key's token: `tfk_` and at least 22 base64url characters (128 bits). */
  keyTokenPattern: /^tfk_[A-Za-z0-9_-]{22,200}$/,
  actionTypePattern: /^[A-Za-z0-9_.:-]{1,64}$/,
  descriptionMaxLength: 4096,
  tasksPerBatch: 1000,
  dependenciesPerTask: 1000,
  onErrorEntries: 16,
  handlerTasksPerEntry: 32,
  errorCodes: 64,
  errorCodeMaxLength: 64,
  errorMessageMaxLength: 4096,
  /** Serialized size of a task's output. */
  outputMaxBytes: 256 * 1024,
  /** A heartbeat's progress, serialized. */
  progressMaxBytes: 16 * 1024,
  /** stdout/stderr in a report: only the last bytes are kept. */
  logTailBytes: 64 * 1024,
  /** Live output (`POST /v1/tasks/:id/logs`): the most one request appends. */
  logAppendMaxBytes: 256 * 1024,
  /** Live output kept per stream per attempt: the last bytes. */
  logStreamKeptBytes: 1024 * 1024,
  /** How deeply JSON values may nest (input, output, action). */
  jsonMaxDepth: 32,
  retryCountMax: 100,
  delayMaxSeconds: 7 * 24 * 3600,
  timeoutMaxSeconds: 7 * 24 * 3600,
  leaseMaxSeconds: 3600,
  defaultLeaseSeconds: 30,
  pollWaitMaxSeconds: 60,
  pollWaitDefaultSeconds: 30,
  pollMaxTasks: 100,
  taskWaitMaxSeconds: 300,
  listDefaultLimit: 50,
  listMaxLimit: 500,
  /** A task's priority: higher first. */
  priorityMin: -100,
  priorityMax: 100,
  /** A concurrency limit's `max_running`. */
  maxRunningMax: 100_000,
  /** Namespace-wide limits per namespace; per-workflow limits per workflow. */
  limitsPerNamespace: 1000,
  limitsPerWorkflow: 32,
  schedulesPerNamespace: 1000,
} as const;

/** Between SIGTERM and SIGKILL when a worker stops an attempt's processes (timeout, cancel, shutdown). */
export const STOP_GRACE_MS = 5000;

/** How long a worker waits for an attempt's last output to reach the API before it reports the attempt. */
export const LAST_OUTPUT_WAIT_MS = 5000;

/**
 * How long after `timeout_s` the API fails a running attempt itself. The worker stops it at
 * `timeout_s` (SIGTERM, then SIGKILL STOP_GRACE_MS later), sends its last output (at most
 * LAST_OUTPUT_WAIT_MS) and reports TIMEOUT; until then no other attempt may start. 5 s more
 * cover the time between the claim and the worker's timer. The API's own verdict is for a
 * worker that went silent or does not keep the limit.
 */
export const TIMEOUT_GRACE_MS = STOP_GRACE_MS + LAST_OUTPUT_WAIT_MS + 5000;
