import { describe, expect, it } from '@jest/globals';
import { stripProtoKeys } from '@nestjs/common/utils/strip-proto-keys.util.js';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import {
  CreateWorkflowDto,
  passesRules,
  rulesCheckApplies,
  TaskBatchDto,
  TaskSpecDto,
  VALIDATE_OPTIONS,
} from '@tagflow/spec';
import { CreateKeyDto } from '../auth/keys.dto.js';
import { PutDataDto } from '../data-space/data.dto.js';
import { PutLimitDto } from '../limits/limits.dto.js';
import { CreateScheduleDto } from '../schedules/schedule.dto.js';
import { AppendLogDto } from '../streams/logs.dto.js';
import { ShortcutTaskDto, TaskPatchDto } from '../tasks/task.dto.js';
import {
  CompleteDto,
  FailDto,
  HeartbeatDto,
  PollDto,
  ReportAndPollDto,
} from '../worker-protocol/worker-protocol.dto.js';
import { RegisterWorkerDto, WorkerHeartbeatDto } from '../workers/worker.dto.js';

// passesRules lets a request body skip class-validator: it must never pass what class-validator
// refuses. Each valid body below is changed in every field it has (nested ones included) to
// values of every JSON type, out of range and malformed, and given keys no rule names (and the
// prototype keys both paths drop first); wherever passesRules says yes, class-validator must
// find nothing.

const id = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const task = {
  name: 'deploy-1',
  tags: ['web', 'eu'],
  action: { type: 'shell', command: 'true' },
  input: { host: 'a', n: 1 },
  requires: ['build'],
  requires_tags: ['db'],
  retry: { count: 2, delay_s: 1.5, backoff: 2, max_delay_s: 30 },
  timeout_s: 60,
  lease_s: 30,
  on_error: [{ codes: ['E1'], run: [{ name: 'cleanup', action: { type: 'noop' } }] }],
  revert: { type: 'shell', command: 'undo' },
  produces: ['out.ip'],
  priority: 5,
  not_before: '2026-12-01T06:00:00Z',
  callback: { url: 'https://example.com/hook', secret: 's' },
};

type Sample = [name: string, cls: new () => object, body: Record<string, unknown>];
const samples: Sample[] = [
  ['a task', TaskSpecDto, task],
  ['a bare task', TaskSpecDto, { action: { type: 'noop' } }],
  ['a batch', TaskBatchDto, { tasks: [task, { action: { type: 'noop' } }] }],
  [
    'a workflow',
    CreateWorkflowDto,
    {
      name: 'wf',
      description: 'd',
      tags: ['t'],
      input: { k: 1 },
      tasks: [task],
      sealed: true,
      on_failure: 'rollback',
      retention_days: 7,
      limits: { web: 2 },
      callback: { url: 'http://example.com/x' },
    },
  ],
  ['a poll', PollDto, { tags: ['web', 'eu'], worker_id: id, wait_s: 10, max_tasks: 5 }],
  ['a heartbeat', HeartbeatDto, { lease_token: 'tok', progress: { pct: 50 } }],
  ['a completion', CompleteDto, { lease_token: 'tok', stdout: 'o', stderr: 'e', exit_code: 0, output: { a: 1 } }],
  ['a failure', FailDto, { lease_token: 'tok', error: { message: 'm', code: 'E1', retryable: true } }],
  [
    'reports and a poll',
    ReportAndPollDto,
    {
      reports: [
        { task_id: id, lease_token: 'tok', status: 'complete', output: { a: 1 } },
        { task_id: id, lease_token: 'tok', status: 'fail', error: { message: 'm' } },
      ],
      poll: { tags: ['web'], max_tasks: 2 },
    },
  ],
  [
    'a task change',
    TaskPatchDto,
    { input: { a: 1 }, retry: { count: 1 }, on_error: [{ run: [{ action: { type: 'noop' } }] }], callback: null },
  ],
  [
    'a schedule',
    CreateScheduleDto,
    {
      name: 'nightly',
      cron: '0 3 * * *',
      timezone: 'UTC',
      overlap: 'skip',
      workflow: { name: 'wf', tasks: [{ action: { type: 'noop' } }] },
    },
  ],
  ['a worker', RegisterWorkerDto, { name: 'w-1', tags: ['web'], hostname: 'h', version: '1' }],
  ['a worker heartbeat', WorkerHeartbeatDto, { leases: [{ task_id: id, lease_token: 'tok', progress: 1 }] }],
  ['a data entry', PutDataDto, { value: { a: [1, 2] } }],
  ['a log append', AppendLogDto, { lease_token: 'tok', stream: 'stdout', data: 'line' }],
  ['a limit', PutLimitDto, { max_running: 3 }],
  ['a one-task workflow (rules inherited)', ShortcutTaskDto, { ...task, workflow_name: 'one' }],
  [
    'a key',
    CreateKeyDto,
    { name: 'ci key', role: 'worker', namespace: 'team-a', tags: ['web*'], expires_at: '2027-01-01T00:00:00Z' },
  ],
];

const VALUES: unknown[] = [
  null,
  0,
  -1,
  1.5,
  1e12,
  '',
  'x',
  'x'.repeat(3000),
  'a b/..',
  '2026-02-30T06:00:00Z',
  'ftp://example.com',
  true,
  [],
  [null],
  [1],
  ['a'],
  ['x'.repeat(300)],
  [{}],
  [[]],
  {},
  { type: 1 },
  { type: 'shell' },
  { url: 'https://example.com' },
  { message: 'm' },
  { extra: 1 },
  [{ action: { type: 'noop' } }],
];

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** Every path to a value in `v`: object keys and array indexes, to `depth` levels. */
function paths(v: unknown, depth = 4, at: (string | number)[] = []): (string | number)[][] {
  if (depth === 0 || typeof v !== 'object' || v === null) return [];
  const keys: (string | number)[] = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return keys.flatMap((k) => [[...at, k], ...paths((v as Record<string, unknown>)[k], depth - 1, [...at, k])]);
}

/** The bodies: each value at each path, each key removed, and keys no rule names at each object. */
function variants(body: Record<string, unknown>): unknown[] {
  const out: unknown[] = [];
  const at = (root: unknown, path: (string | number)[]) =>
    path
      .slice(0, -1)
      .reduce<Record<string | number, unknown>>(
        (o, k) => o[k] as Record<string, unknown>,
        root as Record<string, unknown>,
      );
  for (const path of paths(body)) {
    const last = path[path.length - 1];
    for (const value of VALUES) {
      const b = clone(body);
      at(b, path)[last] = clone(value);
      out.push(b);
    }
    const removed = clone(body);
    delete at(removed, path)[last];
    out.push(removed);
  }
  for (const path of [[], ...paths(body)]) {
    for (const key of ['extra', 'constructor', 'toString', 'hasOwnProperty']) {
      const b = clone(body);
      const target = path.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], b);
      if (typeof target !== 'object' || target === null || Array.isArray(target)) continue;
      (target as Record<string, unknown>)[key] = 1;
      out.push(b);
    }
  }
  // A key JSON.parse keeps as data.
  out.push(JSON.parse(`{"__proto__": {"x": 1}, ${JSON.stringify(body).slice(1)}`));
  return out;
}

describe('passesRules (the fast path past class-validator)', () => {
  it.each(samples)('passes %s that class-validator passes', async (_, cls, body) => {
    const instance = plainToInstance(cls, clone(body));
    expect(await validate(instance, VALIDATE_OPTIONS)).toEqual([]);
    expect(passesRules(instance)).toBe(true);
  });

  it.each(samples)('never passes a change to %s that class-validator refuses', async (_, cls, body) => {
    let fast = 0;
    let refused = 0;
    const wrong: string[] = [];
    for (const v of variants(body)) {
      // As both paths to class-transformer do (Nest's pipe, validateAs).
      stripProtoKeys(v);
      const instance = plainToInstance(cls, v);
      const passed = passesRules(instance);
      const errors = await validate(instance, VALIDATE_OPTIONS);
      if (errors.length > 0) refused++;
      if (!passed) continue;
      fast++;
      if (errors.length > 0) wrong.push(JSON.stringify(v).slice(0, 300));
    }
    expect(wrong).toEqual([]);
    // The variants do exercise both answers.
    expect(refused).toBeGreaterThan(0);
    expect(fast).toBeGreaterThan(0);
  });

  it('speaks for class-validator only without groups or always', () => {
    expect(rulesCheckApplies(VALIDATE_OPTIONS)).toBe(true);
    expect(rulesCheckApplies({ ...VALIDATE_OPTIONS, groups: ['admin'] })).toBe(false);
    expect(rulesCheckApplies({ ...VALIDATE_OPTIONS, always: true })).toBe(false);
  });

  it('leaves to class-validator what it cannot judge the same way', () => {
    expect(passesRules(null)).toBe(false);
    expect(passesRules({ tags: ['a'] })).toBe(false); // a plain object: no class, no rules
    const poll = plainToInstance(PollDto, { tags: ['a'] });
    (poll as unknown as { tags: unknown }).tags = new Set(['a']);
    expect(passesRules(poll)).toBe(false);
  });
});
