import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmodSync, existsSync, mkdtempSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Api, freePort, task, waitFor, waitForTask, waitForWorkflow, workflow } from './support/harness.js';
import { alive, WorkerProcess } from './support/worker-process.js';

const scratch = mkdtempSync(join(tmpdir(), 'tagflow-worker-e2e-'));
const uniq = () => Math.random().toString(36).slice(2, 10);
const sh = (command: string, extra: Record<string, unknown> = {}) => ({ action: { type: 'shell', command }, ...extra });

/** The worker agent, as a real process running real shell commands against the real API. */
describe('the worker agent', () => {
  let api: Api;
  let worker: WorkerProcess;
  const tag = `w-${uniq()}`;
  beforeAll(async () => {
    api = await Api.start();
    worker = await WorkerProcess.start({ api: api.url, tags: [tag], concurrency: 4, name: 'main-worker' });
  });
  afterAll(async () => {
    await worker?.stop();
    await api?.stop();
  });

  it('passes input through $TAGFLOW_INPUT and takes output from $TAGFLOW_OUTPUT', async () => {
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('master', {
            tags: [tag],
            ...sh('printf \'{"ip":"10.0.0.5","attempt":"%s"}\' "$TAGFLOW_ATTEMPT" > "$TAGFLOW_OUTPUT"'),
          }),
          task('join', {
            tags: [tag],
            requires: ['master'],
            input: { role: 'replica', port: 5432 },
            ...sh('cat "$TAGFLOW_INPUT"; echo; echo "task=$TAGFLOW_TASK_ID wf=$TAGFLOW_WORKFLOW_ID"; echo oops >&2'),
          }),
        ],
      }),
    );
    await waitForWorkflow(api, wf.id, ['SUCCESS'], 20_000);
    expect((await api.task(wf.id, 'master')).output).toEqual({ ip: '10.0.0.5', attempt: '1' });
    const join = await api.task(wf.id, 'join');
    expect(JSON.parse(join.stdout.split('\n')[0])).toEqual({ role: 'replica', port: 5432 });
    expect(join.stdout).toContain(`task=${join.id} wf=${wf.id}`);
    expect(join).toMatchObject({ stderr: 'oops\n', exit_code: 0, worker_id: expect.any(String) });
  });

  it('keeps the last 64 KiB of a long stdout', async () => {
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [task('noisy', { tags: [tag], ...sh('head -c 200000 /dev/zero | tr "\\0" a; echo THE-END') })],
      }),
    );
    await waitForWorkflow(api, wf.id, ['SUCCESS'], 20_000);
    const t = await api.task(wf.id, 'noisy');
    expect(Buffer.byteLength(t.stdout)).toBe(64 * 1024);
    expect(t.stdout.endsWith('THE-END\n')).toBe(true);
  });

  it('turns a non-zero exit into that error code, which picks the on_error handler', async () => {
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('check', {
            tags: [tag],
            ...sh('echo "disk nearly full" >&2; exit 3'),
            on_error: [
              {
                codes: ['3'],
                run: [
                  task('cleanup', {
                    tags: [tag],
                    ...sh('echo "cleaning after $(cat "$TAGFLOW_INPUT" | tr -d \'\\n\' | head -c 300)"'),
                  }),
                ],
              },
            ],
          }),
          task('after', { tags: [tag], requires: ['check'], ...sh('true') }),
        ],
      }),
    );
    expect((await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'], 20_000)).state).toBe('SUCCESS');
    const check = await api.task(wf.id, 'check');
    expect(check).toMatchObject({
      state: 'ERROR',
      handled: true,
      exit_code: 3,
      error: { code: '3', message: 'exit status 3' },
      stderr: 'disk nearly full\n',
    });
    expect((await api.task(wf.id, 'cleanup')).stdout).toContain('"failed_task":{');
  });

  it('kills a run past timeout_s, with everything it started, and fails it with TIMEOUT', async () => {
    const pidFile = join(scratch, `timeout-${uniq()}`);
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [task('hang', { tags: [tag], timeout_s: 1, ...sh(`sleep 60 & echo $! > ${pidFile}; wait`) })],
      }),
    );
    const t = await waitForTask(api, wf.id, 'hang', ['ERROR']);
    expect(t.error.code).toBe('TIMEOUT');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await waitFor('the background sleep to be killed too', async () => !alive(pid));
  });

  it('has the time to stop a run that ignores SIGTERM before the API times it out itself', async () => {
    const pidFile = join(scratch, `stubborn-${uniq()}`);
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('stubborn', {
            tags: [tag],
            timeout_s: 1,
            ...sh(`trap '' TERM; echo $$ > ${pidFile}; while :; do sleep 0.1; done`),
          }),
        ],
      }),
    );
    const t = await waitForTask(api, wf.id, 'stubborn', ['ERROR'], 20_000);
    // The worker's verdict, after SIGKILL: not the API's at timeout_s while the shell still ran.
    expect(t.error).toMatchObject({
      code: 'TIMEOUT',
      message: 'ran longer than timeout_s=1; its processes were stopped',
    });
    expect(alive(Number(readFileSync(pidFile, 'utf8')))).toBe(false);
  });

  it('stops a running sleep when it is cancelled, and reports it CANCELLED', async () => {
    const pidFile = join(scratch, `cancel-${uniq()}`);
    const wf = await api.createWorkflow(
      workflow({ tasks: [task('sleeper', { tags: [tag], lease_s: 3, ...sh(`echo $$ > ${pidFile}; exec sleep 60`) })] }),
    );
    const running = await waitForTask(api, wf.id, 'sleeper', ['RUNNING']);
    await waitFor('the pid file', async () => readFileSync(pidFile, 'utf8').trim() !== '' || undefined);
    await api.post(`/v1/tasks/${running.id}/cancel`);
    const t = await waitForTask(api, wf.id, 'sleeper', ['CANCELLED'], 10_000);
    expect(t.error.code).toBe('CANCELLED');
    await waitFor('the sleep to be gone', async () => !alive(Number(readFileSync(pidFile, 'utf8'))));
  });

  it('fails an unknown action type with UNSUPPORTED_ACTION and does not retry it', async () => {
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [task('odd', { tags: [tag], action: { type: 'terraform-apply' }, retry: { count: 3 } })],
      }),
    );
    const t = await waitForTask(api, wf.id, 'odd', ['ERROR']);
    expect(t).toMatchObject({ attempt: 1, error: { code: 'UNSUPPORTED_ACTION' } });
    expect(t.error.message).toContain('terraform-apply');
  });

  it('takes what the README says: a worker tagged web,eu-west,host:web01 runs ["web"], ["host:web01"] and ["web","eu-west"], not ["web","host:web02"] nor ["db"]', async () => {
    const u = uniq();
    const [web, eu, web01, web02, db] = ['web', 'eu-west', 'host:web01', 'host:web02', 'db'].map((t) => `${t}-${u}`);
    const w = await WorkerProcess.start({ api: api.url, tags: [web, eu, web01], name: 'web01' });
    const others: WorkerProcess[] = [];
    try {
      const workerId = /"msg":"registered".*?"worker_id":"([^"]+)"/.exec(w.output)![1];
      const wf = await api.createWorkflow(
        workflow({
          sealed: true,
          tasks: [
            task('any-web', { tags: [web] }),
            task('this-host', { tags: [web01] }),
            task('web-in-eu', { tags: [eu, web] }),
            task('other-host', { tags: [web, web02] }),
            task('database', { tags: [db] }),
          ],
        }),
      );
      for (const name of ['any-web', 'this-host', 'web-in-eu']) {
        expect(await waitForTask(api, wf.id, name, ['SUCCESS'], 20_000)).toMatchObject({ worker_id: workerId });
      }
      // Both workers are parked again, having been offered nothing else: the other two wait.
      await waitFor(
        'both workers to park a poll',
        async () => (await api.metric('tagflow_polls_waiting')) >= 2,
        10_000,
      );
      expect((await api.task(wf.id, 'other-host')).state).toBe('READY');
      expect((await api.task(wf.id, 'database')).state).toBe('READY');
      // Each runs on a worker that has all of its tags.
      others.push(await WorkerProcess.start({ api: api.url, tags: [web, web02], name: 'web02' }));
      others.push(await WorkerProcess.start({ api: api.url, tags: [db], name: 'db' }));
      expect((await waitForWorkflow(api, wf.id, ['SUCCESS'], 20_000)).state).toBe('SUCCESS');
    } finally {
      await Promise.all([w.stop(), ...others.map((o) => o.stop())]);
    }
  });

  it('runs noop and echo, in process: no directory is made for their attempts', async () => {
    const made: string[] = [];
    const watcher = watch(worker.workDir, (_, name) => made.push(String(name)));
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('n', { tags: [tag] }),
          task('e', { tags: [tag], action: { type: 'echo', output: { hello: 'world' } } }),
        ],
      }),
    );
    await waitForWorkflow(api, wf.id, ['SUCCESS'], 20_000);
    watcher.close();
    expect((await api.task(wf.id, 'e')).output).toEqual({ hello: 'world' });
    expect(made).toEqual([]);
    // A shell task, by contrast, runs in a directory of its own, removed afterwards.
    const shell = await api.createWorkflow(
      workflow({ sealed: true, tasks: [task('s', { tags: [tag], ...sh('pwd') })] }),
    );
    await waitForWorkflow(api, shell.id, ['SUCCESS'], 20_000);
    const ran = (await api.task(shell.id, 's')).stdout.trim();
    expect(ran.startsWith(`${worker.workDir}/`)).toBe(true);
    expect(existsSync(ran)).toBe(false);
  });
});

describe('the worker agent under stress', () => {
  let api: Api;
  beforeAll(async () => {
    api = await Api.start({ env: { PORT: String(await freePort()) } });
  });
  afterAll(async () => {
    await api?.stop();
  });

  it('never runs more tasks at once than its concurrency', async () => {
    const t = `cc-${uniq()}`;
    const w = await WorkerProcess.start({ api: api.url, tags: [t], concurrency: 2 });
    try {
      const wf = await api.createWorkflow(
        workflow({
          sealed: true,
          tasks: Array.from({ length: 6 }, (_, i) => task(`s${i}`, { tags: [t], ...sh('sleep 0.6') })),
        }),
      );
      let most = 0;
      await waitFor(
        'all six to finish',
        async () => {
          const running = (await api.get(`/v1/workflows/${wf.id}/tasks?state=RUNNING`)).body.items.length;
          most = Math.max(most, running);
          return (await api.workflow(wf.id)).state === 'SUCCESS';
        },
        30_000,
      );
      expect(most).toBe(2);
    } finally {
      await w.stop();
    }
  });

  it('on SIGTERM hands a task in flight back; another worker runs it; the first exits 143 (stopped by a signal)', async () => {
    const t = `term-${uniq()}`;
    const first = await WorkerProcess.start({ api: api.url, tags: [t], graceS: 1, name: 'first' });
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [
          task('job', {
            tags: [t],
            ...sh('if [ "$TAGFLOW_ATTEMPT" = 1 ]; then sleep 60; fi; echo "done on attempt $TAGFLOW_ATTEMPT"'),
          }),
        ],
      }),
    );
    await waitForTask(api, wf.id, 'job', ['RUNNING']);
    first.signal('SIGTERM');
    expect(await first.exit()).toBe(143);
    const handedBack = await waitForTask(api, wf.id, 'job', ['READY']);
    expect(handedBack).toMatchObject({ attempt: 2, error: { code: 'WORKER_SHUTDOWN' } });
    const second = await WorkerProcess.start({ api: api.url, tags: [t], name: 'second' });
    try {
      await waitForWorkflow(api, wf.id, ['SUCCESS'], 20_000);
      expect((await api.task(wf.id, 'job')).stdout).toBe('done on attempt 2\n');
    } finally {
      await second.stop();
    }
  });

  it('does not let a task that stops its worker go round the fleet for ever', async () => {
    // The task signals the worker running it, which hands it back as it stops. A
    // supervisor brings back each worker that exits (the systemd unit of docs/workers.md: Restart=always).
    const t = `fleet-${uniq()}`;
    const wf = await api.createWorkflow(
      workflow({
        sealed: true,
        tasks: [task('killer', { tags: [t], retry: { count: 0 }, ...sh('kill -TERM $PPID; sleep 30') })],
      }),
    );
    const exits: (number | null)[] = [];
    for (let i = 0; i < 6; i++) {
      const w = await WorkerProcess.start({ api: api.url, tags: [t], graceS: 1, name: `fleet-${i}` });
      // Each worker takes the task and is stopped by it (the report goes in before it exits).
      exits.push(
        await waitFor(
          `worker ${i} to be stopped by the task`,
          async () => (w.proc.exitCode === null && w.proc.signalCode === null ? undefined : w.exit()),
          30_000,
        ),
      );
      if ((await api.task(wf.id, 'killer')).state === 'ERROR') break;
    }
    const ended = await waitForTask(api, wf.id, 'killer', ['ERROR'], 30_000);
    // Three hand-backs outside the budget of zero retries, then the fourth counts: ERROR.
    expect(ended).toMatchObject({ state: 'ERROR', attempt: 4, error: { code: 'WORKER_SHUTDOWN' } });
    expect(exits).toEqual([143, 143, 143, 143]);
  });

  it('keeps polling through an API restart', async () => {
    const t = `restart-${uniq()}`;
    const w = await WorkerProcess.start({ api: api.url, tags: [t] });
    try {
      expect(await api.stop()).toBe(0);
      api = await Api.start({ databaseUrl: api.databaseUrl, prefix: api.prefix, env: { PORT: new URL(api.url).port } });
      const wf = await api.createWorkflow(
        workflow({ sealed: true, tasks: [task('after-restart', { tags: [t], ...sh('echo back') })] }),
      );
      await waitForWorkflow(api, wf.id, ['SUCCESS'], 30_000);
      expect(w.proc.exitCode).toBeNull();
    } finally {
      await w.stop();
    }
  });

  it('loads a plugin executor (the ansible-playbook example, against a stand-in ansible-playbook)', async () => {
    const t = `plugin-${uniq()}`;
    const bin = mkdtempSync(join(tmpdir(), 'fake-ansible-'));
    writeFileSync(
      join(bin, 'ansible-playbook'),
      `#!/bin/sh
echo "args: $*"
echo
echo "PLAY RECAP *********"
echo "web01 : ok=3    changed=1    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0"
echo "web02 : ok=2    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0"
`,
    );
    chmodSync(join(bin, 'ansible-playbook'), 0o755);
    const w = await WorkerProcess.start({
      api: api.url,
      tags: [t],
      plugins: [resolve('examples/plugins/ansible-playbook-executor.mjs')],
      env: { PATH: `${bin}:${process.env.PATH ?? ''}` },
    });
    try {
      const wf = await api.createWorkflow(
        workflow({
          sealed: true,
          tasks: [
            task('play', {
              tags: [t],
              input: { version: '1.2' },
              action: { type: 'ansible-playbook', playbook: 'site.yml', inventory: 'hosts.ini', limit: 'web' },
            }),
          ],
        }),
      );
      await waitForWorkflow(api, wf.id, ['SUCCESS', 'ERROR'], 20_000);
      const play = await api.task(wf.id, 'play');
      expect(play.state).toBe('SUCCESS');
      expect(play.output).toMatchObject({ ok: 5, changed: 1, failed: 0, hosts: { web01: { skipped: 2 } } });
      expect(play.stdout).toContain('args: site.yml -i hosts.ini --limit web --extra-vars {"version":"1.2"}');
    } finally {
      await w.stop();
    }
  });
});
