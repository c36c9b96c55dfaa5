import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api, task, waitFor, workflow } from './support/harness.js';
import { WorkerProcess } from './support/worker-process.js';

/**
 * The worker's key stays the worker's: a task finds it nowhere (its environment, its
 * parent's, the key file), with or without --run-as. What is tested is the worker, so the
 * suite runs once a run, not once per database.
 */
describe("the worker's key, out of its tasks' reach", () => {
  let api: Api;
  const admin = `tfk_${randomBytes(24).toString('base64url')}`;
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  const call = (method: string, path: string, token: string, body?: unknown) =>
    api.request(method, path, body, as(token));
  const newKey = async (spec: object) => {
    const r = await call('POST', '/v1/keys', admin, spec);
    expect(r.status).toBe(201);
    return r.body as { id: string; token: string };
  };

  beforeAll(async () => {
    api = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin } });
  });
  afterAll(async () => {
    await api?.stop();
  });

  it("runs a shell task that cannot find the worker's key: not in its environment, its parent's, nor the key file", async () => {
    const t = `secret-${randomUUID().slice(0, 8)}`;
    const dir = mkdtempSync(join(tmpdir(), 'tagflow-key-'));
    const file = join(dir, 'worker.token');
    const workerKey = (await newKey({ name: 'shell-worker', role: 'worker', tags: [t] })).token;
    writeFileSync(file, `${workerKey}\n`, { mode: 0o644 });
    const loose = await WorkerProcess.start({ api: api.url, tags: [t], args: ['--token-file', file] }).then(
      () => 'started',
      (e: Error) => e.message,
    );
    expect(loose).toContain('can be read by other users (mode 644): chmod 600 it');
    chmodSync(file, 0o600);
    // A marker in the worker's own environment shows the probe does see what the worker holds.
    const marker = `marker-${randomUUID()}`;
    const worker = await WorkerProcess.start({
      api: api.url,
      tags: [t],
      args: ['--token-file', file],
      env: { HOME: dir, PROBE_MARKER: marker },
    });
    try {
      const secret = workerKey.slice(4, 20);
      const probe = [
        `env | grep -cF -- '${secret}' || true`,
        `tr '\\0' '\\n' < /proc/$PPID/environ | grep -cF -- '${secret}' || true`,
        `tr '\\0' ' ' < /proc/$PPID/cmdline | grep -cF -- '${secret}' || true`,
        `tr '\\0' '\\n' < /proc/$PPID/environ | grep -cF -- '${marker}' || true`,
      ].join('; ');
      const wf = (
        await call(
          'POST',
          '/v1/workflows',
          admin,
          workflow({ sealed: true, tasks: [task('probe', { tags: [t], action: { type: 'shell', command: probe } })] }),
        )
      ).body;
      const done = await waitFor(
        'the probe to finish',
        async () => {
          const r = (await call('GET', `/v1/workflows/${wf.id}/tasks/probe`, admin)).body;
          return r.state === 'SUCCESS' || r.state === 'ERROR' ? r : undefined;
        },
        20_000,
      );
      expect(done.state).toBe('SUCCESS');
      expect(done.stdout.trim().split('\n')).toEqual(['0', '0', '0', '1']);
    } finally {
      await worker.stop();
    }
    const exposed = await WorkerProcess.start({ api: api.url, tags: [t], env: { TAGFLOW_TOKEN: workerKey } }).then(
      () => 'started',
      (e: Error) => e.message,
    );
    expect(exposed).toContain('TAGFLOW_TOKEN is not read by the worker');
  });

  // Starting processes as another user needs root; the suite runs as root in CI (see .ci/run).
  (process.getuid?.() === 0 ? it : it.skip)(
    'runs tasks as another user with --run-as: the key file, the worker process, its environment and root-only directories are out of reach',
    async () => {
      const t = `runas-${randomUUID().slice(0, 8)}`;
      const dir = mkdtempSync(join(tmpdir(), 'tagflow-key-'));
      const file = join(dir, 'worker.token');
      const workerKey = (await newKey({ name: 'runas-worker', role: 'worker', tags: [t] })).token;
      writeFileSync(file, `${workerKey}\n`, { mode: 0o600 });
      const worker = await WorkerProcess.start({
        api: api.url,
        tags: [t],
        args: ['--token-file', file, '--run-as', 'nobody'],
        env: { UNIT_SECRET: 'in-the-unit' },
      });
      try {
        const probe = [
          'id -un',
          `cat '${file}' >/dev/null 2>&1 && echo read-the-key || echo key-file-refused`,
          'cat /proc/$PPID/environ >/dev/null 2>&1 && echo read-worker-environ || echo worker-environ-refused',
          'ls .. >/dev/null 2>&1 && echo listed-work-dir || echo work-dir-unlisted',
          `env | grep -cF -- '${workerKey.slice(4, 20)}' || true`,
          'echo "${UNIT_SECRET:-not-passed}"',
          'tagflow-worker data put probe.user "\\"$(id -un)\\""',
          'echo "{\\"home\\": \\"$HOME\\"}" > "$TAGFLOW_OUTPUT"',
        ].join('; ');
        // A task that swaps its output file for a link to the worker's key must not get the key read for it.
        const swap = `rm -f "$TAGFLOW_OUTPUT"; ln -s '${file}' "$TAGFLOW_OUTPUT"`;
        const wf = (
          await call(
            'POST',
            '/v1/workflows',
            admin,
            workflow({
              sealed: true,
              on_failure: 'continue',
              tasks: [
                task('probe', { tags: [t], produces: ['probe.user'], action: { type: 'shell', command: probe } }),
                task('swap', { tags: [t], requires: ['probe'], action: { type: 'shell', command: swap } }),
                // root may enter the key's directory; the task's user may not, and the task enters it as that user.
                task('enter', { tags: [t], requires: ['probe'], action: { type: 'shell', command: 'ls', cwd: dir } }),
              ],
            }),
          )
        ).body;
        const finished = async (name: string) =>
          waitFor(
            `${name} to finish`,
            async () => {
              const r = (await call('GET', `/v1/workflows/${wf.id}/tasks/${name}`, admin)).body;
              return r.state === 'SUCCESS' || r.state === 'ERROR' ? r : undefined;
            },
            20_000,
          );
        const done = await finished('probe');
        expect({ state: done.state, stderr: done.stderr }).toEqual({ state: 'SUCCESS', stderr: '' });
        expect(done.stdout.trim().split('\n')).toEqual([
          'nobody',
          'key-file-refused',
          'worker-environ-refused',
          'work-dir-unlisted',
          '0',
          'not-passed',
        ]);
        expect(done.output).toEqual({ home: expect.stringMatching(/^\/(nonexistent|var)/) });
        expect((await call('GET', `/v1/workflows/${wf.id}/data/probe.user`, admin)).body.value).toBe('nobody');
        const swapped = await finished('swap');
        expect(swapped).toMatchObject({
          state: 'ERROR',
          error: { code: 'INVALID_OUTPUT', message: expect.stringContaining('symbolic link') },
        });
        expect(JSON.stringify(swapped)).not.toContain(workerKey.slice(4));
        const entered = await finished('enter');
        expect(entered).toMatchObject({
          state: 'ERROR',
          stdout: '',
          stderr: expect.stringContaining('cannot change directory'),
        });
      } finally {
        await worker.stop();
      }
      const asUser = await WorkerProcess.start({
        api: api.url,
        tags: [t],
        args: ['--token-file', file, '--run-as', 'no-such-user-here'],
      }).then(
        () => 'started',
        (e: Error) => e.message,
      );
      expect(asUser).toContain('--run-as no-such-user-here: no such user');
    },
  );
});
