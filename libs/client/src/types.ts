/**
 * The wire types of Tagflow's /v1 API, shared by the API's mappers and every client: each
 * is the OpenAPI document's schema (docs/openapi.json), through the types generated from
 * it (openapi.generated.ts, written by `npm run openapi`), so there is one shape of each.
 */
import type { components } from './openapi.generated.js';

type Schemas = components['schemas'];

// ---- Resources, as the API answers them ----
export type Task = Schemas['Task'];
/** A task as a poll hands it out: with its lease. */
export type LeasedTask = Schemas['LeasedTask'];
export type Lease = Schemas['Lease'];
export type TaskState = Task['state'];
export type TaskError = Schemas['TaskError'];
export type Action = Schemas['Action'];
export type Workflow = Schemas['Workflow'];
export type WorkflowState = Workflow['state'];
export type OnFailure = Workflow['on_failure'];
export type Schedule = Schemas['Schedule'];
export type ScheduleRun = NonNullable<Schedule['runs']>[number];
/** A namespace-wide concurrency limit (`/v1/limits`). */
export type ConcurrencyLimit = Schemas['Limit'];
export type WorkerInfo = Schemas['Worker'];
export type TaskEvent = Schemas['TaskEvent'];
export type DataEntry = Schemas['DataEntry'];
/** An API key as listed (the token is shown only when it is created). */
export type ApiKey = Schemas['Key'];
export type KeyRole = ApiKey['role'];
/** A key as created: with its token, shown this once. */
export type NewKey = Schemas['NewKey'];
/** One transition of a workflow (no `task_id`) or of one of its tasks, as the event stream sends it. */
export type WorkflowStreamEvent = Schemas['WorkflowEvent'];
/** A page of a list: `next_cursor` asks for the next one (null: the last). */
export type Page<T> = Omit<Schemas['WorkflowPage'], 'items'> & { items: T[] };
/** The error body every non-2xx answer carries; branch on `code` (docs/api.md lists them), `message` is for people. */
export type ErrorBody = Schemas['ErrorBody'];

// ---- What clients send ----
export type WorkflowSpec = Schemas['CreateWorkflowDto'];
export type TaskSpec = Schemas['TaskSpecDto'];
export type RetrySpec = Schemas['RetryDto'];
export type CallbackSpec = Schemas['CallbackDto'];
/** `POST /v1/schedules`: a workflow created on each tick of a cron expression. */
export type ScheduleSpec = Schemas['CreateScheduleDto'];
export type PollRequest = Schemas['PollDto'];

// ---- The worker protocol ----
export type HeartbeatAnswer = Schemas['HeartbeatAnswer'];
/** What a finished attempt printed and how it exited. */
export type Report = Pick<Schemas['CompleteDto'], 'stdout' | 'stderr' | 'exit_code'>;
export type Failure = Schemas['FailureDto'];
/** One report of a batch (`report()`): a completion or a failure of a leased task. */
export type BatchReport = Schemas['BatchReportDto'] &
  ({ status: 'complete'; error?: undefined } | { status: 'fail'; error: Failure });
/** One lease of a worker's heartbeat (`heartbeatWorker()`). */
export type LeaseBeat = Schemas['LeaseBeatDto'];
/** A lease after the heartbeat: extended (200), or gone (404, 409: stop the task, do not report it). */
export type LeaseBeatResult = Schemas['WorkerHeartbeatAnswer']['leases'][number];
/** How one report of a batch was judged: 200, or 404 / 409 / 422 with the reason. */
export type ReportResult = Schemas['ReportResult'];

// ---- JSON chosen by users ----
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON chosen by users
export type JsonObject = Record<string, any>;

// ---- The client's own shapes of a followed task log (server-sent `stdout`/`stderr`/`end` events) ----
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
