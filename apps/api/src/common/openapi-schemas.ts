import type { SchemaObject } from '@nestjs/swagger';
import { TASK_STATES, WORKFLOW_STATES } from '@tagflow/domain';

/**
 * The answers' schemas, as the wire types of libs/client (types.ts) say them, strict: every
 * field listed is always there (null when it has no value) and no other is. The end-to-end
 * suites check every answer they receive against them (test/support/contract.ts), so a
 * field added to a mapper and not here fails there.
 */

type Schema = SchemaObject | { $ref: string };

const ref = (name: string): { $ref: string } => ({ $ref: `#/components/schemas/${name}` });
const str: SchemaObject = { type: 'string' };
const time: SchemaObject = { type: 'string', format: 'date-time' };
const int: SchemaObject = { type: 'integer' };
const bool: SchemaObject = { type: 'boolean' };
/** Any JSON object chosen by users (inputs, outputs, actions). */
const json: SchemaObject = { type: 'object', additionalProperties: true };
const nullable = (s: SchemaObject): SchemaObject => ({ ...s, nullable: true });
/** A schema of components that may be null (OpenAPI 3.0: a $ref cannot carry `nullable`). */
const nullableRef = (name: string): SchemaObject => ({ type: 'object', allOf: [ref(name)], nullable: true });

/** Every property required, none other allowed. */
function strict(properties: Record<string, Schema>, optional: readonly string[] = []): SchemaObject {
  return {
    type: 'object',
    additionalProperties: false,
    required: Object.keys(properties).filter((p) => !optional.includes(p)),
    properties,
  };
}

/** A field with what it means (shown in the document and in the client's generated types). */
const about = (description: string, s: SchemaObject): SchemaObject => ({ ...s, description });

const arrayOf = (items: Schema): SchemaObject => ({ type: 'array', items });
const strings = arrayOf(str);
const page = (item: string): SchemaObject => strict({ items: arrayOf(ref(item)), next_cursor: nullable(str) });

const taskState: SchemaObject = { type: 'string', enum: [...TASK_STATES] };

const TASK_PROPERTIES: Record<string, Schema> = {
  id: str,
  workflow_id: str,
  namespace: str,
  name: str,
  kind: { type: 'string', enum: ['task', 'handler', 'revert'] },
  parent_task_id: nullable(str),
  tags: strings,
  action: ref('Action'),
  input: json,
  resolved_input: about(
    "The input the current attempt's worker received, references replaced; null when the input has no references (or no attempt has started).",
    nullable(json),
  ),
  requires: strings,
  requires_tags: strings,
  produces: strings,
  retry: strict({
    count: int,
    delay_s: { type: 'number' },
    backoff: { type: 'number' },
    max_delay_s: nullable({ type: 'number' }),
  }),
  timeout_s: nullable(int),
  lease_s: int,
  on_error: arrayOf(strict({ codes: strings, run: arrayOf(json) }, ['codes'])),
  revert: nullableRef('Action'),
  state: taskState,
  attempt: int,
  handled: bool,
  cancel_requested: bool,
  output: nullable(json),
  error: nullableRef('TaskError'),
  stdout: nullable(str),
  stderr: nullable(str),
  exit_code: nullable(int),
  progress: {},
  worker_id: nullable(str),
  created_by: about(
    'The key whose request added it (handlers and reverts: that of the task they answer); null when no key was involved.',
    nullableRef('CreatedBy'),
  ),
  lease_expires_at: nullable(time),
  created_at: nullable(time),
  updated_at: nullable(time),
  ready_at: nullable(time),
  not_before: about('Not READY before this time.', nullable(time)),
  priority: about('-100..100: higher first among ready tasks a poll fits; oldest first at equal priority.', int),
  held_by_limit: about(
    'READY but kept off the queue by a full concurrency limit: which one (null otherwise).',
    nullable(strict({ tag: str, scope: { type: 'string', enum: ['namespace', 'workflow'] } })),
  ),
  callback: about(
    'Where its finish is announced; `signed` when it has a secret (never shown).',
    nullableRef('CallbackView'),
  ),
  started_at: nullable(time),
  finished_at: nullable(time),
};

const KEY_PROPERTIES: Record<string, Schema> = {
  id: str,
  name: str,
  role: { type: 'string', enum: ['admin', 'operator', 'reader', 'worker'] },
  namespace: str,
  tags: strings,
  expires_at: nullable(time),
  revoked_at: nullable(time),
  created_at: time,
};

export const RESPONSE_SCHEMAS: Record<string, SchemaObject> = {
  CreatedBy: strict({ key_id: nullable(str), key_name: str }),
  CallbackView: strict({ url: str, signed: bool }),
  Action: { type: 'object', required: ['type'], properties: { type: str }, additionalProperties: true },
  TaskError: strict({ message: str, code: nullable(str) }),
  Task: strict(TASK_PROPERTIES),
  /** A task as a poll hands it out: with its lease. */
  LeasedTask: strict({ ...TASK_PROPERTIES, lease: ref('Lease') }),
  Lease: strict({ token: str, expires_at: time }),
  Workflow: strict({
    id: str,
    name: str,
    namespace: str,
    description: nullable(str),
    tags: strings,
    input: json,
    state: { type: 'string', enum: [...WORKFLOW_STATES] },
    sealed: bool,
    on_failure: { type: 'string', enum: ['fail', 'continue', 'rollback'] },
    retention_days: about("Days kept once finished; null: the API's RETENTION_DAYS.", nullable(int)),
    limits: about('Concurrency limits within it: at most N of its tasks carrying TAG RUNNING at once.', {
      type: 'object',
      additionalProperties: int,
    }),
    callback: about(
      'Where its finish is announced; `signed` when it has a secret (never shown).',
      nullableRef('CallbackView'),
    ),
    created_by: about('The key whose request made it.', nullableRef('CreatedBy')),
    created_at: nullable(time),
    updated_at: nullable(time),
    finished_at: nullable(time),
    task_counts: strict(Object.fromEntries(TASK_STATES.map((s) => [s, int]))),
  }),
  WorkflowPage: page('Workflow'),
  TaskPage: page('Task'),
  TaskList: strict({ tasks: arrayOf(ref('Task')) }),
  DataEntry: strict({ key: str, value: {}, written_at: nullable(time), task_id: nullable(str) }),
  HeartbeatAnswer: strict({ expires_at: time, cancel_requested: bool }),
  ReportResult: strict({ task_id: str, status: int, code: str, message: str }, ['code', 'message']),
  Worker: strict({
    id: str,
    name: str,
    namespace: str,
    tags: strings,
    hostname: nullable(str),
    version: nullable(str),
    created_at: nullable(time),
    last_seen_at: nullable(time),
    stopping_at: about('When it handed a task back as it stopped; it polls no more under this id.', nullable(time)),
    running_task_ids: strings,
  }),
  WorkerPage: page('Worker'),
  Limit: strict({
    tag: str,
    max_running: about('At most this many tasks carrying the tag RUNNING at once in the namespace (0: none).', int),
    running: about('Tasks carrying the tag RUNNING now.', int),
    held: about('READY tasks this limit keeps off the queue until it has room.', int),
    created_at: time,
    updated_at: time,
  }),
  LimitList: strict({ items: arrayOf(ref('Limit')) }),
  Schedule: strict(
    {
      id: str,
      name: str,
      namespace: str,
      cron: str,
      timezone: str,
      overlap: { type: 'string', enum: ['skip', 'allow'] },
      paused: bool,
      paused_reason: about(
        "Why the API paused it (its owner's key was revoked or expired); null when running or paused on request.",
        nullable(str),
      ),
      workflow: json,
      next_run_at: about('The next tick it acts on (null while paused).', nullable(time)),
      last_run_at: nullable(time),
      last_workflow_id: nullable(str),
      created_by: nullableRef('CreatedBy'),
      created_at: time,
      updated_at: time,
      runs: {
        description: 'The latest runs, newest first (on `GET /v1/schedules/{id}`).',
        type: 'array',
        items: strict({
          tick: time,
          outcome: { type: 'string', enum: ['created', 'skipped', 'failed'] },
          workflow_id: nullable(str),
          message: nullable(str),
          at: time,
        }),
      },
    },
    ['runs'],
  ),
  SchedulePage: page('Schedule'),
  TaskEvent: strict({ from: nullable(taskState), to: taskState, attempt: int, reason: nullable(str), at: time }),
  /** A transition of the workflow (no task_id, name, attempt) or of one of its tasks. */
  WorkflowEvent: strict(
    {
      id: str,
      at: time,
      task_id: str,
      name: nullable(str),
      from: nullable(str),
      to: str,
      attempt: int,
      reason: nullable(str),
    },
    ['task_id', 'name', 'attempt'],
  ),
  DataKeyList: strict({
    items: arrayOf(strict({ key: str, written_at: nullable(time), task_id: nullable(str) })),
  }),
  WorkerHeartbeatAnswer: strict({
    leases: {
      type: 'array',
      items: strict({ task_id: str, status: int, expires_at: time, cancel_requested: bool, code: str, message: str }, [
        'expires_at',
        'cancel_requested',
        'code',
        'message',
      ]),
    },
  }),
  AuditEntry: strict({
    id: int,
    at: time,
    key_id: nullable(str),
    key_name: str,
    namespace: str,
    method: str,
    path: str,
    status: int,
    resource_id: nullable(str),
  }),
  CallbackList: strict({
    items: {
      type: 'array',
      items: strict({
        id: str,
        event: { type: 'string', enum: ['workflow.finished', 'task.finished'] },
        task_id: nullable(str),
        url: str,
        signed: bool,
        state: { type: 'string', enum: ['pending', 'delivered', 'failed'] },
        attempts: int,
        next_attempt_at: nullable(time),
        last_status: nullable(int),
        last_error: nullable(str),
        created_at: nullable(time),
        delivered_at: nullable(time),
        history: {
          type: 'array',
          items: strict({ at: nullable(time), status: nullable(int), error: nullable(str), ms: { type: 'number' } }),
        },
      }),
    },
  }),
  LogAppended: strict({ seq: int }),
  TaskEventList: arrayOf(ref('TaskEvent')),
  WorkflowEventPage: strict({ items: arrayOf(ref('WorkflowEvent')), next: nullable(str) }),
  AuditPage: page('AuditEntry'),
  Key: strict(KEY_PROPERTIES),
  KeyPage: page('Key'),
  /** A key as created: with its token, shown this once. */
  NewKey: strict({ ...KEY_PROPERTIES, token: str }),
  PollAnswer: strict({ tasks: arrayOf(ref('LeasedTask')) }),
  ReportAnswer: strict({ results: arrayOf(ref('ReportResult')), tasks: arrayOf(ref('LeasedTask')) }),
};

/**
 * The success answer of each operation described so far, by operationId: its status and
 * schema (`streams`: with `follow=1` it is a stream of server-sent events instead). The
 * others (deletes: 204; a task's log, text or events) say only their status.
 */
export const SUCCESS_ANSWERS: Readonly<Record<string, { status: string; schema: Schema; streams?: boolean }>> = {
  createWorkflow: { status: '201', schema: ref('Workflow') },
  listWorkflows: { status: '200', schema: ref('WorkflowPage') },
  getWorkflow: { status: '200', schema: ref('Workflow') },
  sealWorkflow: { status: '200', schema: ref('Workflow') },
  cancelWorkflow: { status: '200', schema: ref('Workflow') },
  pauseWorkflow: { status: '200', schema: ref('Workflow') },
  resumeWorkflow: { status: '200', schema: ref('Workflow') },
  addTasks: { status: '201', schema: { oneOf: [ref('Task'), ref('TaskList')] } },
  listTasks: { status: '200', schema: ref('TaskPage') },
  getWorkflowTask: { status: '200', schema: ref('Task') },
  createTask: { status: '201', schema: ref('Task') },
  getTask: { status: '200', schema: ref('Task') },
  updateTask: { status: '200', schema: ref('Task') },
  cancelTask: { status: '200', schema: ref('Task') },
  rerunTask: { status: '200', schema: ref('Task') },
  pollTasks: { status: '200', schema: ref('PollAnswer') },
  reportTasks: { status: '200', schema: ref('ReportAnswer') },
  heartbeatTask: { status: '200', schema: ref('HeartbeatAnswer') },
  completeTask: { status: '200', schema: ref('Task') },
  failTask: { status: '200', schema: ref('Task') },
  getData: { status: '200', schema: ref('DataEntry') },
  putData: { status: '200', schema: ref('DataEntry') },
  registerWorker: { status: '201', schema: ref('Worker') },
  listWorkers: { status: '200', schema: ref('WorkerPage') },
  getWorker: { status: '200', schema: ref('Worker') },
  listLimits: { status: '200', schema: ref('LimitList') },
  getLimit: { status: '200', schema: ref('Limit') },
  putLimit: { status: '200', schema: ref('Limit') },
  createSchedule: { status: '201', schema: ref('Schedule') },
  listSchedules: { status: '200', schema: ref('SchedulePage') },
  getSchedule: { status: '200', schema: ref('Schedule') },
  pauseSchedule: { status: '200', schema: ref('Schedule') },
  resumeSchedule: { status: '200', schema: ref('Schedule') },
  triggerSchedule: { status: '201', schema: ref('Workflow') },
  createKey: { status: '201', schema: ref('NewKey') },
  listKeys: { status: '200', schema: ref('KeyPage') },
  listTaskEvents: { status: '200', schema: ref('TaskEventList') },
  listWorkflowEvents: { status: '200', schema: ref('WorkflowEventPage'), streams: true },
  listData: { status: '200', schema: ref('DataKeyList') },
  heartbeatWorker: { status: '200', schema: ref('WorkerHeartbeatAnswer') },
  listAudit: { status: '200', schema: ref('AuditPage') },
  listCallbacks: { status: '200', schema: ref('CallbackList') },
  appendTaskLog: { status: '200', schema: ref('LogAppended') },
};
