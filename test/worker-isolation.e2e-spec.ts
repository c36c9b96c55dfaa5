import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api, task, waitFor, workflow } from './support/harness.js';
import { WorkerProcess } from './support/worker-process.js';

const uniq = () => Math.random().toString(36).slice(2, 10);

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
