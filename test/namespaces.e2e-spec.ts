import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { Api, DATABASE, task, waitFor, workflow, type HttpResult } from './support/harness.js';

/**
 * Two tenants with the same workflow names and the same tags, each with an operator,
 * a reader and a worker key of its own namespace. Nothing of one is visible to the
 * other (404, never 403), and a worker of one is never offered the other's task. On
 * PostgreSQL tenant b talks to a second API replica; on SQLite (one API process) both
 * talk to the same one.
 */
describe('namespaces', () => {
  let a: Api;
  let b: Api;
  const admin = `tfk_${randomBytes(24).toString('base64url')}`;
  type Tenant = { api: () => Api; ns: string; operator: string; reader: string; worker: string; admin: string };
  const ta = { ns: 'team-a', api: () => a } as Tenant;
  const tb = { ns: 'team-b', api: () => b } as Tenant;
  const call = <T = any>(
    api: Api,
    token: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<HttpResult<T>> => api.request<T>(method, path, body, { authorization: `Bearer ${token}`, ...headers });
  const created: Record<string, { wf: string; task: string }> = {};

  beforeAll(async () => {
    a = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin } });
    b =
      DATABASE === 'postgres'
        ? await Api.start({ databaseUrl: a.databaseUrl, prefix: a.prefix, env: { TAGFLOW_ADMIN_TOKEN: admin } })
        : a;
    for (const t of [ta, tb]) {
      for (const role of ['operator', 'reader', 'worker', 'admin'] as const) {
        const r = await call(a, admin, 'POST', '/v1/keys', { name: `${t.ns}-${role}`, role, namespace: t.ns });
        expect(r.status).toBe(201);
        expect(r.body.namespace).toBe(t.ns);
        t[role] = r.body.token;
      }
      // The same name, the same tags, in both namespaces.
      const wf = await call(
        t.api(),
        t.operator,
        'POST',
        '/v1/workflows',
        workflow({ name: 'deploy', tasks: [task('restart', { tags: ['web'] })] }),
      );
      expect(wf.status).toBe(201);
      expect(wf.body.namespace).toBe(t.ns);
      const tasks = await call(t.api(), t.reader, 'GET', `/v1/workflows/${wf.body.id}/tasks`);
      created[t.ns] = { wf: wf.body.id, task: tasks.body.items[0].id };
      expect(tasks.body.items[0]).toMatchObject({ name: 'restart', namespace: t.ns });
    }
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b !== a ? b?.stop() : undefined]);
  });

  it("lists only the caller's namespace", async () => {
    for (const [me, other] of [
      [ta, tb],
      [tb, ta],
    ]) {
      const list = await call(me.api(), me.reader, 'GET', '/v1/workflows?name=deploy');
      expect(list.status).toBe(200);
      expect(list.body.items.map((w: { id: string }) => w.id)).toEqual([created[me.ns].wf]);
      expect(JSON.stringify(list.body)).not.toContain(created[other.ns].wf);
    }
  });

  it("answers 404 for every route given the other namespace's ids", async () => {
    const { wf, task: taskId } = created[ta.ns];
    const attempts: [string, string, unknown?][] = [
      ['GET', `/v1/workflows/${wf}`],
      ['GET', `/v1/workflows/${wf}/tasks`],
      ['GET', `/v1/workflows/${wf}/tasks/restart`],
      ['GET', `/v1/workflows/${wf}/data`],
      ['GET', `/v1/workflows/${wf}/data/some.key`],
      ['PUT', `/v1/workflows/${wf}/data/some.key`, { value: 1 }],
      ['POST', `/v1/workflows/${wf}/tasks`, task('intruder')],
      ['POST', `/v1/workflows/${wf}/seal`],
      ['POST', `/v1/workflows/${wf}/pause`],
      ['POST', `/v1/workflows/${wf}/resume`],
      ['POST', `/v1/workflows/${wf}/cancel`],
      ['DELETE', `/v1/workflows/${wf}`],
      ['GET', `/v1/tasks/${taskId}`],
      ['GET', `/v1/tasks/${taskId}?wait_s=1`],
      ['GET', `/v1/tasks/${taskId}/events`],
      ['PATCH', `/v1/tasks/${taskId}`, { tags: ['web'] }],
      ['POST', `/v1/tasks/${taskId}/cancel`],
      ['POST', `/v1/tasks/${taskId}/rerun`],
      ['DELETE', `/v1/tasks/${taskId}`],
    ];
    for (const [method, path, body] of attempts) {
      const r = await call(
        b,
        tb.operator,
        method,
        path,
        body ?? (method === 'GET' || method === 'DELETE' ? undefined : {}),
      );
      expect({ method, path, status: r.status }).toEqual({ method, path, status: 404 });
    }
    // And nothing changed: tenant a's workflow still runs with its one task, untouched.
    const mine = await call(a, ta.reader, 'GET', `/v1/workflows/${wf}`);
    expect(mine.body).toMatchObject({ state: 'RUNNING', sealed: false, task_counts: { READY: 1 } }); // b's seal did not reach it
    expect((await call(a, ta.reader, 'GET', `/v1/workflows/${wf}/data`)).body.items).toEqual([]);
  });

  it("never offers a worker the other namespace's task, though the tags are the same", async () => {
    const gotB = await call(b, tb.worker, 'POST', '/v1/tasks/poll', { tags: ['web'], max_tasks: 10, wait_s: 5 });
    expect(gotB.status).toBe(200);
    expect(gotB.body.tasks.map((t: { id: string }) => t.id)).toEqual([created[tb.ns].task]);
    // The reports of b's worker cannot reach a's task, even holding a's lease.
    const gotA = await call(a, ta.worker, 'POST', '/v1/tasks/poll', { tags: ['web'], max_tasks: 10, wait_s: 5 });
    expect(gotA.body.tasks.map((t: { id: string }) => t.id)).toEqual([created[ta.ns].task]);
    const leaseA = gotA.body.tasks[0].lease.token as string;
    const aTask = created[ta.ns].task;
    for (const [verb, body] of [
      ['heartbeat', {}],
      ['complete', { output: { by: 'b' } }],
      ['fail', { error: { message: 'by b' } }],
    ] as const) {
      const r = await call(b, tb.worker, 'POST', `/v1/tasks/${aTask}/${verb}`, { lease_token: leaseA, ...body });
      expect({ verb, status: r.status }).toEqual({ verb, status: 404 });
    }
    expect(
      (await call(a, ta.worker, 'POST', `/v1/tasks/${aTask}/complete`, { lease_token: leaseA, output: { by: 'a' } }))
        .status,
    ).toBe(200);
    expect((await call(a, ta.reader, 'GET', `/v1/tasks/${aTask}`)).body).toMatchObject({
      state: 'SUCCESS',
      output: { by: 'a' },
    });
  });

  it('hands an untagged task only to a poll of its own namespace, parked on either replica', async () => {
    // A poll parked in b waits; a's untagged task, made ready meanwhile, must not wake it into taking it.
    const parkedB = call(b, tb.worker, 'POST', '/v1/tasks/poll', { tags: [], wait_s: 3 });
    await b.pollsParked();
    const wf = await call(
      a,
      ta.operator,
      'POST',
      '/v1/workflows',
      workflow({ name: 'untagged', tasks: [task('anywhere', { tags: [] })] }),
    );
    expect(wf.status).toBe(201);
    expect((await parkedB).body.tasks).toEqual([]);
    const gotA = await call(a, ta.worker, 'POST', '/v1/tasks/poll', { tags: [], wait_s: 5 });
    expect(gotA.body.tasks.map((t: { name: string; namespace: string }) => [t.name, t.namespace])).toEqual([
      ['anywhere', ta.ns],
    ]);
  });

  it('keeps workers, data and blocking reads apart', async () => {
    const reg = await call(a, ta.worker, 'POST', '/v1/workers', { name: 'web01', tags: ['web'] });
    expect(reg.body.namespace).toBe(ta.ns);
    expect((await call(b, tb.reader, 'GET', `/v1/workers/${reg.body.id}`)).status).toBe(404);
    expect((await call(b, tb.reader, 'GET', '/v1/workers')).body.items.map((w: { id: string }) => w.id)).not.toContain(
      reg.body.id,
    );
    expect((await call(a, ta.reader, 'GET', '/v1/workers')).body.items.map((w: { id: string }) => w.id)).toContain(
      reg.body.id,
    );
    // b's worker cannot poll as a's registered worker.
    expect(
      (await call(b, tb.worker, 'POST', '/v1/tasks/poll', { tags: ['web'], worker_id: reg.body.id, wait_s: 0 })).status,
    ).toBe(404);

    const wfB = created[tb.ns].wf;
    const read = call(b, tb.reader, 'GET', `/v1/workflows/${wfB}/data/cluster.master?wait_s=10`);
    await waitFor('the read to park', async () => (await b.metric('tagflow_data_reads_waiting')) >= 1);
    expect(
      (await call(a, ta.operator, 'PUT', `/v1/workflows/${wfB}/data/cluster.master`, { value: 'from a' })).status,
    ).toBe(404);
    expect(
      (await call(b, tb.operator, 'PUT', `/v1/workflows/${wfB}/data/cluster.master`, { value: 'from b' })).status,
    ).toBe(200);
    expect((await read).body).toMatchObject({ key: 'cluster.master', value: 'from b' });
  });

  it('lets a namespace key act only in its own namespace; an all-namespaces admin picks one by header', async () => {
    const other = await call(a, ta.operator, 'GET', '/v1/workflows', undefined, { 'tagflow-namespace': tb.ns });
    expect(other.status).toBe(403);
    expect(other.body.message).toContain(`may not act in namespace ${tb.ns}`);
    expect((await call(a, ta.operator, 'GET', '/v1/workflows', undefined, { 'tagflow-namespace': ta.ns })).status).toBe(
      200,
    );
    const bad = await call(a, admin, 'GET', '/v1/workflows', undefined, { 'tagflow-namespace': 'Team_B' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toContain('Tagflow-Namespace');
    const asB = await call(a, admin, 'GET', '/v1/workflows?name=deploy', undefined, { 'tagflow-namespace': tb.ns });
    expect(asB.body.items.map((w: { id: string }) => w.id)).toEqual([created[tb.ns].wf]);
    const made = await call(a, admin, 'POST', '/v1/workflows', workflow({ name: 'by-admin' }), {
      'tagflow-namespace': tb.ns,
    });
    expect(made.body.namespace).toBe(tb.ns);
    expect((await call(b, tb.reader, 'GET', `/v1/workflows/${made.body.id}`)).status).toBe(200);
  });

  it('keeps a namespace admin to its own keys and audit', async () => {
    const elsewhere = await call(a, ta.admin, 'POST', '/v1/keys', {
      name: 'sneaky',
      role: 'operator',
      namespace: tb.ns,
    });
    expect(elsewhere.status).toBe(403);
    expect(
      (await call(a, ta.admin, 'POST', '/v1/keys', { name: 'everything', role: 'admin', namespace: '*' })).status,
    ).toBe(403);
    expect(
      (await call(a, admin, 'POST', '/v1/keys', { name: 'star-op', role: 'operator', namespace: '*' })).status,
    ).toBe(400);
    const own = await call(a, ta.admin, 'POST', '/v1/keys', { name: 'a-helper', role: 'reader' });
    expect(own.body.namespace).toBe(ta.ns);
    const keys = (await call(a, ta.admin, 'GET', '/v1/keys?limit=500')).body.items as {
      id: string;
      namespace: string;
    }[];
    expect(new Set(keys.map((k) => k.namespace))).toEqual(new Set([ta.ns]));
    const bKeys = (await call(a, tb.admin, 'GET', '/v1/keys?limit=500')).body.items as { id: string }[];
    expect((await call(a, ta.admin, 'DELETE', `/v1/keys/${bKeys[0].id}`)).status).toBe(404);
    const audit = (await call(a, ta.admin, 'GET', '/v1/audit?limit=500')).body.items as {
      namespace: string;
      path: string;
    }[];
    expect(audit.length).toBeGreaterThan(0);
    expect(new Set(audit.map((r) => r.namespace))).toEqual(new Set([ta.ns]));
    const all = (await call(a, admin, 'GET', '/v1/audit?limit=500')).body.items as { namespace: string }[];
    expect(new Set(all.map((r) => r.namespace))).toEqual(new Set(['default', ta.ns, tb.ns]));
  });
});
