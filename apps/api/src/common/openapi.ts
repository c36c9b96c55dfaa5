import type { OpenAPIObject } from '@nestjs/swagger';
import { tightenRequestSchemas } from './openapi-requests.js';
import { RESPONSE_SCHEMAS, SUCCESS_ANSWERS } from './openapi-schemas.js';

type Operation = NonNullable<OpenAPIObject['paths'][string]['get']>;

/**
 * The readable name of each operation (what a generated client calls its methods), by
 * Nest's `Controller_method`. A route missing here keeps Nest's name, and the contract
 * test (test/contract.e2e-spec.ts) fails naming it.
 */
export const OPERATION_IDS: Readonly<Record<string, string>> = {
  WorkflowsController_create: 'createWorkflow',
  WorkflowsController_list: 'listWorkflows',
  WorkflowsController_get: 'getWorkflow',
  WorkflowsController_remove: 'deleteWorkflow',
  WorkflowsController_seal: 'sealWorkflow',
  WorkflowsController_cancel: 'cancelWorkflow',
  WorkflowsController_pause: 'pauseWorkflow',
  WorkflowsController_resume: 'resumeWorkflow',
  WorkflowsController_addTasks: 'addTasks',
  WorkflowsController_listTasks: 'listTasks',
  WorkflowsController_getTask: 'getWorkflowTask',
  TasksController_shortcut: 'createTask',
  TasksController_get: 'getTask',
  TasksController_patch: 'updateTask',
  TasksController_remove: 'deleteTask',
  TasksController_events: 'listTaskEvents',
  TasksController_cancel: 'cancelTask',
  TasksController_rerun: 'rerunTask',
  WorkerProtocolController_poll: 'pollTasks',
  WorkerProtocolController_report: 'reportTasks',
  WorkerProtocolController_heartbeat: 'heartbeatTask',
  WorkerProtocolController_complete: 'completeTask',
  WorkerProtocolController_fail: 'failTask',
  WorkersController_register: 'registerWorker',
  WorkersController_list: 'listWorkers',
  WorkersController_heartbeat: 'heartbeatWorker',
  WorkersController_get: 'getWorker',
  DataController_list: 'listData',
  DataController_get: 'getData',
  DataController_put: 'putData',
  KeysController_create: 'createKey',
  KeysController_list: 'listKeys',
  KeysController_revoke: 'revokeKey',
  AuditController_list: 'listAudit',
  HealthController_health: 'health',
  MetricsController_render: 'metrics',
  StreamsController_append: 'appendTaskLog',
  StreamsController_logsOf: 'getTaskLog',
  StreamsController_eventsOf: 'listWorkflowEvents',
  LimitsController_list: 'listLimits',
  LimitsController_get: 'getLimit',
  LimitsController_put: 'putLimit',
  LimitsController_remove: 'deleteLimit',
  SchedulesController_create: 'createSchedule',
  SchedulesController_list: 'listSchedules',
  SchedulesController_get: 'getSchedule',
  SchedulesController_remove: 'deleteSchedule',
  SchedulesController_pause: 'pauseSchedule',
  SchedulesController_resume: 'resumeSchedule',
  SchedulesController_trigger: 'triggerSchedule',
  CallbacksController_list: 'listCallbacks',
};

export const operationId = (controllerKey: string, methodKey: string): string =>
  OPERATION_IDS[`${controllerKey}_${methodKey}`] ?? `${controllerKey}_${methodKey}`;

/** Operations that take task specs, whose graph can be refused as a whole (422: unknown dependency, cycle, duplicate name). */
const SUBMISSIONS = new Set([
  'createWorkflow',
  'addTasks',
  'createTask',
  'updateTask',
  'createSchedule',
  'triggerSchedule',
]);

/** Error answers an operation gives beyond those its shape implies (its worker unknown or stopping, a name taken). */
const MORE_ERRORS: Record<string, readonly string[]> = {
  pollTasks: ['404', '409'],
  reportTasks: ['404', '409'],
  createSchedule: ['409'],
  createKey: ['409'],
};

const ERROR_BODY = {
  type: 'object',
  required: ['statusCode', 'code', 'message'],
  properties: {
    statusCode: { type: 'integer', description: 'The HTTP status again.' },
    error: { type: 'string', description: "The status's name." },
    code: { type: 'string', description: 'Stable: branch on it (docs/api.md lists them).' },
    message: { type: 'string', description: 'For people; may change.' },
    details: { description: 'What was wrong, by field (400) or by resource (409).' },
    request_id: { type: 'string', description: "The request's x-request-id." },
  },
};

const ERRORS: Record<string, string> = {
  '400': 'Malformed: `details` names each offending field.',
  '401': 'No key, or an unknown, revoked or expired one.',
  '403': "The key's role or grants do not allow this.",
  '404': 'No such resource (in the caller’s namespace).',
  '408': 'The body did not arrive in time.',
  '409': 'The resource is not in a state that allows this; `details.state` names it.',
  '413': 'The body, or a value in it, is over its size limit.',
  '415': 'The body is not JSON (`Content-Type: application/json`).',
  '422': 'Valid on its own but refused with what exists (unknown dependency, cycle, duplicate name).',
  '429': 'Over the key’s rate, or its parked waits; `Retry-After` says when to try again.',
  '503': 'The database or Redis is away, or the API is stopping: send it again (`Retry-After`).',
};

const errorResponse = (status: string) => ({
  description: ERRORS[status],
  content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } },
});

/**
 * What Nest's explorer does not say, added to its document: the error answers of each
 * operation, short summaries (a route's doc comment stays whole as its description), the
 * server, and the key's format. Completes the document it is given, and returns it.
 */
export function completeDocument(document: OpenAPIObject): OpenAPIObject {
  document.servers = [{ url: '/', description: 'This API, where it is served' }];
  document.components = { ...document.components };
  document.components.schemas = { ...document.components.schemas, ...RESPONSE_SCHEMAS, ErrorBody: ERROR_BODY };
  describeJsonFields(document.components.schemas);
  tightenRequestSchemas(document.components.schemas);
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of ['get', 'put', 'post', 'patch', 'delete'] as const) {
      const op = item[method];
      if (!op) continue;
      splitSummary(op);
      const success = SUCCESS_ANSWERS[op.operationId ?? ''];
      if (success) {
        const declared = op.responses[success.status] as { description?: string } | undefined;
        op.responses[success.status] = {
          description: declared?.description || 'Done.',
          content: {
            'application/json': { schema: success.schema },
            ...(success.streams ? { 'text/event-stream': { schema: { type: 'string' } } } : {}),
          },
        };
      }
      const open = extension(op, 'x-access') === 'public';
      if (open) op.security = [];
      const statuses = new Set<string>(['503']);
      if (!open) ['401', '403', '429'].forEach((s) => statuses.add(s));
      if ((op.parameters?.length ?? 0) > 0 || op.requestBody) statuses.add('400');
      if (path.includes('{')) statuses.add('404');
      if (op.requestBody) ['408', '413', '415'].forEach((s) => statuses.add(s));
      if (extension(op, 'x-idempotent') === true) ['409', '422'].forEach((s) => statuses.add(s));
      for (const s of MORE_ERRORS[op.operationId ?? ''] ?? []) statuses.add(s);
      if (method !== 'get' && path.includes('{')) statuses.add('409');
      if (SUBMISSIONS.has(op.operationId ?? '')) statuses.add('422');
      for (const status of [...statuses].sort()) op.responses[status] ??= errorResponse(status);
    }
  }
  return document;
}

/** `summary` is the doc comment's first sentence; the whole comment, when longer, is the description. */
function splitSummary(op: Operation): void {
  const text = (op.summary ?? '').replace(/\s*\n\s*/g, ' ').trim();
  if (!text) return;
  const first = /^(.+?\.)(\s|$)/.exec(text)?.[1] ?? text;
  op.summary = first.replace(/\.$/, '');
  if (first.length < text.length) op.description ??= text;
}

/** Request fields the DTOs type `object` only: actions are an Action, progress and data values any JSON. */
const JSON_FIELDS: Record<string, SchemaOrRef> = {
  action: { $ref: '#/components/schemas/Action' },
  revert: { $ref: '#/components/schemas/Action' },
  progress: { description: 'Any JSON value.' },
  value: { description: 'Any JSON value, null included.' },
};

type SchemaOrRef = NonNullable<OpenAPIObject['components']>['schemas'] extends Record<string, infer S> | undefined
  ? S
  : never;

function describeJsonFields(schemas: Record<string, SchemaOrRef> | undefined): void {
  for (const schema of Object.values(schemas ?? {})) {
    const properties = 'properties' in schema ? schema.properties : undefined;
    for (const [name, field] of Object.entries(properties ?? {})) {
      const bare = 'type' in field && field.type === 'object' && !field.properties && !field.allOf;
      if (bare && JSON_FIELDS[name])
        properties![name] = {
          ...JSON_FIELDS[name],
          ...('description' in field ? { description: field.description } : {}),
        };
    }
  }
}

const extension = (op: Operation, name: string): unknown => (op as unknown as Record<string, unknown>)[name];
