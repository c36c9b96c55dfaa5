/** The wire types of Tagflow's /v1 API, shared by the API's mappers and every client. */

export type TaskState = 'WAITING' | 'READY' | 'RUNNING' | 'SUCCESS' | 'ERROR' | 'CANCELLED' | 'SKIPPED';
export type WorkflowState = 'RUNNING' | 'PAUSED' | 'SUCCESS' | 'ERROR' | 'CANCELLED';
export type OnFailure = 'fail' | 'continue' | 'rollback';
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON chosen by users
export type JsonObject = Record<string, any>;

export interface Action extends JsonObject {
  type: string;
}

export interface RetrySpec {
  count?: number;
  delay_s?: number;
  backoff?: number;
  max_delay_s?: number | null;
}

export interface TaskSpec {
  name?: string;
  tags?: string[];
  action: Action;
  input?: JsonObject;
  requires?: string[];
  requires_tags?: string[];
  retry?: RetrySpec;
  timeout_s?: number;
  lease_s?: number;
  on_error?: { codes?: string[]; run: TaskSpec[] }[];
  revert?: Action;
  /** Data keys this task writes (readers of them wait for it; a cycle is refused). */
  produces?: string[];
  /** Not READY before this time (ISO 8601 with a zone, e.g. `2026-12-01T22:00:00Z`), even with its dependencies met. */
  not_before?: string;
  /** -100..100 (default 0): higher first among ready tasks a poll fits; oldest first at equal priority. */
  priority?: number;
  /** POSTed to when the task finishes, signed with `secret` (`Tagflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`). */
  callback?: CallbackSpec;
}

export interface TaskError {
  message: string;
  code: string | null;
}

export interface Task {
  id: string;
  workflow_id: string;
  namespace: string;
  name: string;
  kind: 'task' | 'handler' | 'revert';
  parent_task_id: string | null;
  tags: string[];
  action: Action;
  input: JsonObject;
  /** The input the current attempt's worker received, references replaced; null when the input has no references (or no attempt has started). */
  resolved_input: JsonObject | null;
  requires: string[];
  requires_tags: string[];
  produces: string[];
  retry: Required<RetrySpec>;
  timeout_s: number | null;
  lease_s: number;
  on_error: { codes?: string[]; run: JsonObject[] }[];
  revert: Action | null;
  state: TaskState;
  attempt: number;
  handled: boolean;
  cancel_requested: boolean;
  output: JsonObject | null;
  error: TaskError | null;
  stdout: string | null;
  stderr: string | null;
  exit_code: number | null;
  progress: unknown;
  worker_id: string | null;
  lease_expires_at: string | null;
  created_at: string | null;
  updated_at: string | null;
  ready_at: string | null;
  /** Not READY before this time. */
  not_before: string | null;
  priority: number;
  /** READY but kept off the queue by a full concurrency limit: which one (null otherwise). */
  held_by_limit: { tag: string; scope: 'namespace' | 'workflow' } | null;
  /** Where its finish is announced; `signed` when it has a secret (never shown). */
  callback: { url: string; signed: boolean } | null;
  started_at: string | null;
  finished_at: string | null;
  /** The key whose request added it (handlers and reverts: that of the task they answer); null when no key was involved. */
  created_by: { key_id: string | null; key_name: string } | null;
}

export interface Lease {
  token: string;
  expires_at: string;
}

export interface LeasedTask extends Task {
  lease: Lease;
}

export interface Workflow {
  id: string;
  name: string;
  namespace: string;
  description: string | null;
  tags: string[];
  input: JsonObject;
  state: WorkflowState;
  sealed: boolean;
  on_failure: OnFailure;
  /** Days kept once finished; null: the API's RETENTION_DAYS. */
  retention_days: number | null;
  /** Concurrency limits within it: at most N of its tasks carrying TAG RUNNING at once. */
  limits: Record<string, number>;
  /** Where its finish is announced; `signed` when it has a secret (never shown). */
  callback: { url: string; signed: boolean } | null;
  created_at: string | null;
  updated_at: string | null;
  finished_at: string | null;
  task_counts: Record<TaskState, number>;
  /** The key whose request made it. */
  created_by: { key_id: string | null; key_name: string } | null;
}

export interface WorkflowSpec {
  name: string;
  description?: string;
  tags?: string[];
  input?: JsonObject;
  tasks?: TaskSpec[];
  sealed?: boolean;
  on_failure?: OnFailure;
  retention_days?: number;
  /** `{TAG: n}`: at most n of its tasks carrying TAG RUNNING at once (a rolling deploy: `{"web": 2}`). */
  limits?: Record<string, number>;
  /** POSTed to when it finishes, signed with `secret` (`Tagflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`). */
  callback?: CallbackSpec;
}

export interface CallbackSpec {
  url: string;
  secret?: string;
}

/** `POST /v1/schedules`: a workflow created on each tick of a cron expression. */
export interface ScheduleSpec {
  name: string;
  /** Five fields (minute hour day month weekday), or six with seconds first. */
  cron: string;
  /** IANA zone the expression is read in (default UTC). */
  timezone?: string;
  /** `skip` (default): no new workflow while the previous run's is unfinished. */
  overlap?: 'skip' | 'allow';
  /** Created on each tick with `scheduled_at` merged into its input. */
  workflow: WorkflowSpec;
}

export interface ScheduleRun {
  tick: string;
  outcome: 'created' | 'skipped' | 'failed';
  workflow_id: string | null;
  message: string | null;
  at: string;
}

export interface Schedule {
  id: string;
  name: string;
  namespace: string;
  cron: string;
  timezone: string;
  overlap: 'skip' | 'allow';
  paused: boolean;
  /** Why the API paused it (its owner's key was revoked or expired); null when running or paused on request. */
  paused_reason: string | null;
  workflow: JsonObject;
  /** The next tick it acts on (null while paused). */
  next_run_at: string | null;
  last_run_at: string | null;
  last_workflow_id: string | null;
  created_by: { key_id: string | null; key_name: string } | null;
  created_at: string;
  updated_at: string;
  /** The latest runs, newest first (on `GET /v1/schedules/:id`). */
  runs?: ScheduleRun[];
}

/** A namespace-wide concurrency limit (`/v1/limits`). */
export interface ConcurrencyLimit {
  tag: string;
  /** At most this many tasks carrying the tag RUNNING at once in the namespace (0: none). */
  max_running: number;
  /** Tasks carrying the tag RUNNING now. */
  running: number;
  /** READY tasks this limit keeps off the queue until it has room. */
  held: number;
  created_at: string;
  updated_at: string;
}

export interface WorkerInfo {
  id: string;
  name: string;
  namespace: string;
  tags: string[];
  hostname: string | null;
  version: string | null;
  created_at: string | null;
  last_seen_at: string | null;
  /** When it handed a task back as it stopped; it polls no more under this id. */
  stopping_at: string | null;
  running_task_ids: string[];
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface TaskEvent {
  from: TaskState | null;
  to: TaskState;
  attempt: number;
  reason: string | null;
  at: string;
}

export interface PollRequest {
  tags: string[];
  worker_id?: string;
  wait_s?: number;
  max_tasks?: number;
}

export interface HeartbeatAnswer {
  expires_at: string;
  cancel_requested: boolean;
}

export interface Report {
  stdout?: string;
  stderr?: string;
  exit_code?: number;
}

export interface Failure {
  message: string;
  code?: string;
  retryable?: boolean;
}

/** One report of a batch (`report()`): a completion or a failure of a leased task. */
export type BatchReport = Report & { task_id: string; lease_token: string } & (
    { status: 'complete'; output?: JsonObject } | { status: 'fail'; error: Failure }
  );

/** One lease of a worker's heartbeat (`heartbeatWorker()`). */
export interface LeaseBeat {
  task_id: string;
  lease_token: string;
  progress?: unknown;
}

/** A lease after the heartbeat: extended (200), or gone (404, 409: stop the task, do not report it). */
export interface LeaseBeatResult {
  task_id: string;
  status: number;
  expires_at?: string;
  cancel_requested?: boolean;
  message?: string;
}

/** How one report of a batch was judged: 200, or 404 / 409 / 422 with the reason. */
export interface ReportResult {
  task_id: string;
  status: number;
  message?: string;
}

/** The error body every non-2xx answer carries. */
export interface ErrorBody {
  statusCode: number;
  error: string;
  /** Stable: branch on it (docs/api.md lists every code); `message` is for people. */
  code: string;
  message: string;
  details?: unknown;
  request_id?: string;
}

export interface DataEntry {
  key: string;
  value: unknown;
  written_at: string | null;
  task_id: string | null;
}

export type LogStream = 'stdout' | 'stderr';

/** A piece of an attempt's live output (`followTaskLogs`). */
export interface LogChunk {
  type: 'chunk';
  stream: LogStream;
  /** Its place in the attempt's output: resume after it with `after` (0: the report's tail of an attempt that streamed nothing). */
  seq: number;
  text: string;
}

/** The attempt followed has ended; `state` is the task's state now (after a failed attempt, the retry's). */
export interface LogEnd {
  type: 'end';
  attempt: number;
  state: TaskState;
}

/** One transition of a workflow (no `task_id`) or of one of its tasks, as the event stream sends it. */
export interface WorkflowStreamEvent {
  /** Resume after this event with `after` / `Last-Event-ID`. */
  id: string;
  at: string;
  task_id?: string;
  name?: string;
  from: string | null;
  to: string;
  attempt?: number;
  reason?: string | null;
}

export type KeyRole = 'admin' | 'operator' | 'reader' | 'worker';

/** An API key as listed (the token is shown only when it is created). */
export interface ApiKey {
  id: string;
  name: string;
  role: KeyRole;
  namespace: string;
  tags: string[];
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
}
