import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { randomBytes, randomUUID } from 'node:crypto';
import { ACCESS, type Access } from '../apps/api/src/auth/access.js';
import { AuditController } from '../apps/api/src/auth/audit.controller.js';
import { KeysController } from '../apps/api/src/auth/keys.controller.js';
import { LimitsController } from '../apps/api/src/limits/limits.controller.js';
import { SchedulesController } from '../apps/api/src/schedules/schedules.controller.js';
import { CallbacksController } from '../apps/api/src/callbacks/callbacks.controller.js';
import { DataController } from '../apps/api/src/data-space/data.controller.js';
import { StreamsController } from '../apps/api/src/streams/streams.controller.js';
import { HealthController } from '../apps/api/src/health/health.controller.js';
import { MetricsController } from '../apps/api/src/metrics/metrics.controller.js';
import { TasksController } from '../apps/api/src/tasks/tasks.controller.js';
import { WorkerProtocolController } from '../apps/api/src/worker-protocol/worker-protocol.controller.js';
import { WorkersController } from '../apps/api/src/workers/workers.controller.js';
import { WorkflowsController } from '../apps/api/src/workflows/workflows.controller.js';
import { Api, task, waitFor, workflow } from './support/harness.js';

const CONTROLLERS = [
  WorkflowsController,
  TasksController,
  WorkerProtocolController,
  WorkersController,
  DataController,
  KeysController,
  AuditController,
  HealthController,
  MetricsController,
  StreamsController,
  LimitsController,
  SchedulesController,
  CallbacksController,
];
const ROLES = ['admin', 'operator', 'reader', 'worker'] as const;
type Role = (typeof ROLES)[number];

interface Route {
  method: string;
  path: string;
  access: Access | undefined;
}

/** Every route with the access rule written on it, read from the controllers' decorators. */
function routesFromDecorators(): Route[] {
  const routes: Route[] = [];
  for (const controller of CONTROLLERS) {
    const base = String(Reflect.getMetadata(PATH_METADATA, controller) ?? '');
    for (const name of Object.getOwnPropertyNames(controller.prototype)) {
      const handler = (controller.prototype as unknown as Record<string, unknown>)[name];
      if (typeof handler !== 'function' || name === 'constructor') continue;
      const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
      if (method === undefined) continue;
      const sub = String(Reflect.getMetadata(PATH_METADATA, handler) ?? '');
      const path = `/${[base, sub].filter((p) => p && p !== '/').join('/')}`.replace(/\/+/g, '/');
      routes.push({
        method: RequestMethod[method],
        path,
        access: Reflect.getMetadata(ACCESS, handler) as Access | undefined,
      });
    }
  }
  return routes;
}

const fill = (path: string) =>
  path
    .replace(':id', randomUUID())
    .replace(':task', 'some-task')
    .replace(':key', 'some.key')
    .replace(':tag', 'some-tag');

/** Access control as an outsider and as each role would meet it, against the real API. */
describe('access control', () => {
  let api: Api;
  const admin = `tfk_${randomBytes(24).toString('base64url')}`;
  const keys = {} as Record<Role, string>;
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  // A body that passes validation where one is needed (a data write), so only access decides.
  const bodyFor = (path: string) => (path.includes('/data/') ? { value: 1 } : {});
  const call = (method: string, path: string, token?: string, body?: unknown) =>
    api.request(
      method,
      path,
      method === 'GET' || method === 'DELETE' ? undefined : (body ?? bodyFor(path)),
      token ? as(token) : {},
    );
  const newKey = async (spec: object) => {
    const r = await call('POST', '/v1/keys', admin, spec);
    expect(r.status).toBe(201);
    return r.body as { id: string; token: string };
  };

  beforeAll(async () => {
    // This suite sends hundreds of requests without a valid key on purpose: no per-address limit here (tested on its own).
    api = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin, RATE_LIMIT_ANON_RPS: '0' } });
    keys.admin = admin;
    for (const role of ['operator', 'reader', 'worker'] as const)
      keys[role] = (await newKey({ name: `${role}-key`, role })).token;
  });
  afterAll(async () => {
    await api.stop();
  });

  it('declares who may call every route, and the routes are the ones the API serves', async () => {
    const routes = routesFromDecorators();
    expect(routes.filter((r) => r.access === undefined).map((r) => `${r.method} ${r.path}`)).toEqual([]);
    const doc = (await api.get<{ paths: Record<string, Record<string, unknown>> }>('/docs/json')).body;
    const served = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    expect(routes.map((r) => `${r.method} ${r.path}`).sort()).toEqual(served.sort());
  });

  it('answers each role per route as its decorator says: 403 naming the role, never 401 for a valid key', async () => {
    const wrong: string[] = [];
    let checked = 0;
    for (const route of routesFromDecorators()) {
      if (route.access === 'public') continue;
      for (const role of ROLES) {
        const r = await call(route.method, fill(route.path), keys[role]);
        const allowed = role === 'admin' || (route.access as readonly string[]).includes(role);
        const ok = allowed
          ? r.status !== 401 && r.status !== 403
          : r.status === 403 && String(r.body.message).includes(`role ${role} may not ${route.method} ${route.path}`);
        if (!ok)
          wrong.push(`${role} ${route.method} ${route.path}: ${r.status} ${JSON.stringify(r.body).slice(0, 120)}`);
        checked++;
      }
    }
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThan(100);
  });

  it('refuses every non-public route without a key, with an unknown one, and through other spellings of its path', async () => {
    const wrong: string[] = [];
    const revoked = await newKey({ name: 'revoked', role: 'admin' });
    expect((await call('DELETE', `/v1/keys/${revoked.id}`, admin)).status).toBe(204);
    for (const route of routesFromDecorators()) {
      const path = fill(route.path);
      if (route.access === 'public') {
        expect((await call(route.method, path)).status).toBe(200);
        continue;
      }
      for (const token of [undefined, 'tfk_not-a-key-at-all-000000000', revoked.token]) {
        const r = await call(route.method, path, token);
        if (r.status !== 401)
          wrong.push(`${route.method} ${path} with ${token?.slice(0, 8) ?? 'no token'}: ${r.status}`);
      }
      const spellings = [
        path.toUpperCase(),
        path.replace('/v1/', '/V1/'),
        `/${path}`,
        path.replace('/v1/', '/v1//'),
        `${path}/`,
        path.replace('v1', '%76%31'),
        path.replace(/\/([a-z])/, (_m, c: string) => `/%${c.charCodeAt(0).toString(16)}`),
      ];
      for (const spelled of spellings) {
        const r = await call(route.method, spelled);
        if (r.status !== 401 && r.status !== 404) wrong.push(`${route.method} ${spelled} without a token: ${r.status}`);
      }
    }
    expect(wrong).toEqual([]);
    expect((await call('GET', '/v1/workflows', revoked.token)).body.message).toMatch(/key revoked was revoked/);
  });

  it('stops a key at its expiry, and never shows a token again', async () => {
    const expiring = await newKey({
      name: 'short-lived',
      role: 'reader',
      expires_at: new Date(Date.now() + 1500).toISOString(),
    });
    expect(expiring.token).toMatch(/^tfk_[A-Za-z0-9_-]{32}$/);
    expect((await call('GET', '/v1/workflows', expiring.token)).status).toBe(200);
    await waitFor(
      'the key to expire',
      async () => (await call('GET', '/v1/workflows', expiring.token)).status === 401,
      5000,
    );
    const list = await call('GET', '/v1/keys?limit=500', admin);
    expect(list.status).toBe(200);
    expect(JSON.stringify(list.body)).not.toContain('tfk_');
    expect(list.body.items.find((k: { id: string }) => k.id === expiring.id)).toMatchObject({
      name: 'short-lived',
      role: 'reader',
      tags: ['*'],
    });
    const bad = await call('POST', '/v1/keys', admin, { name: 'x', role: 'root', tags: ['a b'] });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body.details)).toMatch(/role/);
  });

  it('lets an operator submit only tasks its grants cover, handlers, the shortcut and changes included', async () => {
    const op = (await newKey({ name: 'web-deployer', role: 'operator', tags: ['web*'] })).token;
    const refused = async (path: string, body: object, tag: string | null) => {
      const r = await call('POST', path, op, body);
      expect(r.status).toBe(403);
      expect(r.body.message).toContain(tag === null ? 'untagged task' : `not granted tag ${tag}`);
    };
    await refused('/v1/workflows', workflow({ tasks: [task('migrate', { tags: ['db'] })] }), 'db');
    await refused('/v1/workflows', workflow({ tasks: [task('anything', { tags: [] })] }), null);
    await refused(
      '/v1/workflows',
      workflow({ tasks: [task('deploy', { tags: ['web'], on_error: [{ run: [task('page', { tags: ['db'] })] }] })] }),
      'db',
    );
    await refused('/v1/tasks', { tags: ['db'], action: { type: 'noop' } }, 'db');
    const wf = await call(
      'POST',
      '/v1/workflows',
      op,
      workflow({ tasks: [task('deploy', { tags: ['web', 'web-eu'] })] }),
    );
    expect(wf.status).toBe(201);
    await refused(`/v1/workflows/${wf.body.id}/tasks`, task('more', { tags: ['host:db01'] }), 'host:db01');
    const deploy = (await api.request('GET', `/v1/workflows/${wf.body.id}/tasks/deploy`, undefined, as(op))).body;
    const patched = await api.request('PATCH', `/v1/tasks/${deploy.id}`, { tags: ['db'] }, as(op));
    expect(patched.status).toBe(403);
    expect((await api.request('GET', `/v1/tasks/${deploy.id}`, undefined, as(op))).body.tags).toEqual([
      'web',
      'web-eu',
    ]); // nothing changed
    expect((await api.request('PATCH', `/v1/tasks/${deploy.id}`, { tags: ['web-us'] }, as(op))).status).toBe(200);
    // Another team's task: not to be taken over, rerun, cancelled or deleted.
    const theirs = (
      await call(
        'POST',
        '/v1/workflows',
        admin,
        workflow({ on_failure: 'continue', tasks: [task('migrate', { tags: ['db'] })] }),
      )
    ).body;
    const migrate = (await call('GET', `/v1/workflows/${theirs.id}/tasks/migrate`, admin)).body;
    const takeover = await api.request(
      'PATCH',
      `/v1/tasks/${migrate.id}`,
      { tags: ['web1'], action: { type: 'shell', command: 'id' } },
      as(op),
    );
    expect(takeover.status).toBe(403);
    expect(takeover.body.message).toContain('not granted the tags of task migrate (db)');
    for (const [method, path] of [
      ['POST', `/v1/tasks/${migrate.id}/cancel`],
      ['POST', `/v1/tasks/${migrate.id}/rerun`],
      ['DELETE', `/v1/tasks/${migrate.id}`],
    ]) {
      expect((await call(method, path, op)).status).toBe(403);
    }
    expect((await call('GET', `/v1/tasks/${migrate.id}`, admin)).body).toMatchObject({
      state: 'READY',
      tags: ['db'],
      action: { type: 'noop' },
    });
  });

  it('lets a worker poll only with the capabilities its grants cover', async () => {
    const w = (await newKey({ name: 'web01', role: 'worker', tags: ['web', 'host:web01'] })).token;
    const outside = await call('POST', '/v1/tasks/poll', w, { tags: ['web', 'db'], wait_s: 0 });
    expect(outside.status).toBe(403);
    expect(outside.body.message).toContain('not granted capability db');
    expect((await call('POST', '/v1/tasks/poll', w, { tags: ['host:web01'], wait_s: 0 })).status).toBe(200);
    expect((await call('POST', '/v1/workflows', w, workflow())).status).toBe(403);
    // It is offered only tasks its grants cover: not an untagged task (that needs the grant *),
    // not one that also carries a tag outside them; and, as any poll, only tasks whose tags it names.
    const wf = (
      await call(
        'POST',
        '/v1/workflows',
        admin,
        workflow({
          tasks: [
            task('any'),
            task('web-and-db', { tags: ['web', 'db'] }),
            task('mine', { tags: ['web', 'host:web01'] }),
          ],
        }),
      )
    ).body;
    const web = (
      await call('POST', '/v1/tasks/poll', w, { tags: ['web'], wait_s: 0, max_tasks: 10 })
    ).body.tasks.filter((x: { workflow_id: string }) => x.workflow_id === wf.id);
    expect(web).toEqual([]);
    const got = (
      await call('POST', '/v1/tasks/poll', w, { tags: ['web', 'host:web01'], wait_s: 1, max_tasks: 10 })
    ).body.tasks.filter((x: { workflow_id: string }) => x.workflow_id === wf.id);
    expect(got.map((x: { name: string }) => x.name)).toEqual(['mine']);
    // Its untagged task would fit any later poll of this suite.
    expect((await call('POST', `/v1/workflows/${wf.id}/cancel`, admin)).status).toBe(200);
  });

  it('lets only the key that registered a worker poll under its id (so no other key can hand back as it, and stop it)', async () => {
    const a = (await newKey({ name: 'fleet-a', role: 'worker' })).token;
    const b = (await newKey({ name: 'fleet-b', role: 'worker' })).token;
    const worker = (await call('POST', '/v1/workers', a, { name: 'a-01', tags: ['x'] })).body;
    expect((await call('POST', '/v1/tasks/poll', a, { tags: ['x'], worker_id: worker.id, wait_s: 0 })).status).toBe(
      200,
    );
    const other = await call('POST', '/v1/tasks/poll', b, { tags: ['x'], worker_id: worker.id, wait_s: 0 });
    expect(other.status).toBe(404);
    expect(other.body.message).toContain(`worker ${worker.id} not found`);
  });

  it('lets a lease token write only the keys its task produces, and nothing once the lease ends', async () => {
    const t = `lt-${randomUUID().slice(0, 8)}`;
    const wf = (
      await call(
        'POST',
        '/v1/workflows',
        admin,
        workflow({ tasks: [task('x', { tags: [t], produces: ['x.result'] })] }),
      )
    ).body;
    const leased = (await call('POST', '/v1/tasks/poll', keys.worker, { tags: [t], wait_s: 5 })).body.tasks[0];
    const lease = leased.lease.token as string;
    expect((await call('PUT', `/v1/workflows/${wf.id}/data/x.result`, lease, { value: 1 })).status).toBe(200);
    const other = await call('PUT', `/v1/workflows/${wf.id}/data/someone.else`, lease, { value: 1 });
    expect(other.status).toBe(403);
    expect(other.body.message).toContain('may write only the keys it produces (x.result)');
    expect((await call('GET', `/v1/workflows/${wf.id}/data/x.result`, lease)).status).toBe(200);
    expect((await call('GET', `/v1/workflows/${wf.id}`, lease)).status).toBe(401); // a lease is no key
    expect((await call('POST', `/v1/tasks/${leased.id}/complete`, keys.worker, { lease_token: lease })).status).toBe(
      200,
    );
    expect((await call('GET', `/v1/workflows/${wf.id}/data/x.result`, lease)).status).toBe(401);
  });

  it('records who made each workflow and task, and every state-changing request in the audit log', async () => {
    const op = await newKey({ name: 'auditor-test', role: 'operator' });
    const wf = (
      await call('POST', '/v1/workflows', op.token, workflow({ tasks: [task('first', { tags: ['audit-t'] })] }))
    ).body;
    expect(wf.created_by).toEqual({ key_id: op.id, key_name: 'auditor-test' });
    const second = await call('POST', `/v1/workflows/${wf.id}/tasks`, op.token, task('second', { tags: ['audit-t'] }));
    expect(second.status).toBe(201);
    expect((await call('GET', `/v1/workflows/${wf.id}/tasks/second`, admin)).body.created_by).toEqual({
      key_id: op.id,
      key_name: 'auditor-test',
    });
    expect((await call('POST', `/v1/workflows/${wf.id}/pause`, op.token)).status).toBe(200);
    expect((await call('POST', `/v1/workflows/${wf.id}/tasks`, op.token, { tasks: 'nope' })).status).toBe(400);
    expect((await call('POST', `/v1/workflows/${wf.id}/cancel`, op.token)).status).toBe(200);
    // Refused by role: recorded too, so an operator trying to mint keys shows up.
    expect((await call('POST', '/v1/keys', op.token, { name: 'escalate', role: 'admin' })).status).toBe(403);
    expect((await call('GET', '/v1/audit', op.token)).status).toBe(403);
    const log = (await call('GET', '/v1/audit?limit=500', admin)).body.items.filter(
      (e: { key_id: string | null }) => e.key_id === op.id,
    );
    // The resource: the one an answer made (the workflow, the task), else the one in the path.
    expect(
      log
        .map(
          (e: { method: string; path: string; status: number; resource_id: string }) =>
            `${e.method} ${e.path} ${e.status} ${e.resource_id}`,
        )
        .reverse(),
    ).toEqual([
      `POST /v1/workflows 201 ${wf.id}`,
      `POST /v1/workflows/${wf.id}/tasks 201 ${second.body.id}`,
      `POST /v1/workflows/${wf.id}/pause 200 ${wf.id}`,
      `POST /v1/workflows/${wf.id}/tasks 400 ${wf.id}`,
      `POST /v1/workflows/${wf.id}/cancel 200 ${wf.id}`,
      'POST /v1/keys 403 null',
    ]);
    expect(log[0]).toMatchObject({
      key_name: 'auditor-test',
      namespace: 'default',
      at: expect.stringMatching(/^\d{4}-/),
    });
    const page = (await call('GET', '/v1/audit?limit=2', admin)).body;
    expect(page.items).toHaveLength(2);
    const next = (await call('GET', `/v1/audit?limit=2&cursor=${page.next_cursor}`, admin)).body;
    expect(next.items[0].id).toBeLessThan(page.items[1].id);
  });
});
