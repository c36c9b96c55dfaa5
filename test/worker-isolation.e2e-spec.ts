import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api, task, waitFor, waitForTask, workflow } from './support/harness.js';
import { WorkerProcess } from './support/worker-process.js';

const uniq = () => Math.random().toString(36).slice(2, 10);
const ROOT = process.getuid?.() === 0;

describe('a worker with several --run-as users', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    await api?.stop();
  });

  (ROOT ? it : it.skip)('with one --run-as user per slot, attempts that run at the same time cannot read each other either', async () => {
    const t = `slots-${uniq()}`;
    const dir = mkdtempSync(join(tmpdir(), 'tagflow-slots-'));
    chmodSync(dir, 0o777);
    // Each shows itself, waits for the other, tries to read the other's environment, and waits until both tried.
    const meet = (me: string, other: string) => [
      `echo $$ > ${dir}/${me}.pid`,
      `i=0; until [ -s ${dir}/${other}.pid ]; do i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done`,
      `if tr '\\0' '\\n' < /proc/$(cat ${dir}/${other}.pid)/environ 2>/dev/null | grep -q '^NEXT_SECRET='; then echo read-the-other; else echo refused; fi`,
      `touch ${dir}/${me}.done; i=0; until [ -e ${dir}/${other}.done ]; do i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done`,
      'id -un',
    ].join('\n');
    const worker = await WorkerProcess.start({ api: api.url, tags: [t], concurrency: 2, args: ['--run-as', 'nobody,daemon'] });
    try {
      const wf = await api.createWorkflow(workflow({
        sealed: true,
        tasks: [
          task('a', { tags: [t], action: { type: 'shell', env: { NEXT_SECRET: 'a' }, command: meet('a', 'b') } }),
          task('b', { tags: [t], action: { type: 'shell', env: { NEXT_SECRET: 'b' }, command: meet('b', 'a') } }),
        ],
      }));
      const [a, b] = [await waitForTask(api, wf.id, 'a', ['SUCCESS', 'ERROR']), await waitForTask(api, wf.id, 'b', ['SUCCESS', 'ERROR'])];
      expect([a.stdout.split('\n')[0], b.stdout.split('\n')[0]]).toEqual(['refused', 'refused']);
      expect([a.stdout.split('\n')[1], b.stdout.split('\n')[1]].sort()).toEqual(['daemon', 'nobody']);
      expect(worker.output).not.toContain('share one user');
      await worker.stop();
    } finally {
      await worker.kill9();
    }
  });
});

describe('a worker that runs tasks as its own user', () => {
  it('gives them only an allow-listed environment (nothing else of its own), and warns at start that they can reach its key', async () => {
    const admin = `tfk_${randomBytes(24).toString('base64url')}`;
    const api = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin } });
    const t = `own-${uniq()}`;
    const file = join(mkdtempSync(join(tmpdir(), 'tagflow-key-')), 'worker.token');
    writeFileSync(file, `${admin}\n`, { mode: 0o600 });
    const worker = await WorkerProcess.start({ api: api.url, tags: [t], args: ['--token-file', file], env: { SECRET_IN_WORKER_ENV: 'held-by-the-worker', LANG: 'C.UTF-8' } });
    try {
      const command = [
        'echo "${SECRET_IN_WORKER_ENV:-absent}"',
        `env | grep -cF -- '${admin.slice(4, 20)}' || true`,
        'echo "$LANG $MINE $TAGFLOW_TASK_ID"',
      ].join('; ');
      const r = await api.request('POST', '/v1/workflows', workflow({ sealed: true, tasks: [task('probe', { tags: [t], action: { type: 'shell', env: { MINE: 'its-own' }, command } })] }), { authorization: `Bearer ${admin}` });
      expect(r.status).toBe(201);
      const done = await waitFor('the probe to finish', async () => {
        const p = (await api.request('GET', `/v1/workflows/${r.body.id}/tasks/probe`, undefined, { authorization: `Bearer ${admin}` })).body;
        return p.state === 'SUCCESS' || p.state === 'ERROR' ? p : undefined;
      }, 20_000);
      expect(done.stdout.trim().split('\n')).toEqual(['absent', '0', `C.UTF-8 its-own ${done.id}`]);
      expect(worker.output).toMatch(/"level":"warn","msg":"tasks run as the worker's own user/);
      await worker.stop();
    } finally {
      await worker.kill9();
      await api.stop();
    }
  });
});
