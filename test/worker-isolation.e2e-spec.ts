import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api, task, waitFor, waitForTask, workflow } from './support/harness.js';
import { WorkerProcess } from './support/worker-process.js';

const uniq = () => Math.random().toString(36).slice(2, 10);
const ROOT = process.getuid?.() === 0;
const mounts = existsSync('/proc/self/mounts')
  ? readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
  : [];
const hasCgroupV2 = mounts.some(([, , type]) => type === 'cgroup2');
const hasFreezer = mounts.some(([, , type, opts]) => type === 'cgroup' && (opts ?? '').split(',').includes('freezer'));

/** Alive and not a zombie (a zombie is dead; it only waits for its parent to collect it). */
function running(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * What a task does to reach the attempts after it: records its pid, then, until killed,
 * copies what it can read of every process's environment (and the input file a later
 * attempt's environment names) into a file of its own. Its own SPY_MARK shows it ran.
 */
const SPY = `name=$1; dir=$2; loot="$dir/$name.loot"
echo $$ > "$dir/$name.pid"
while :; do
  cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' |
    grep -a -e '^SPY_MARK=' -e '^NEXT_SECRET=' -e '^TAGFLOW_INPUT=' | while read -r line; do
      grep -qxF -- "$line" "$loot" 2>/dev/null && continue
      echo "$line" >> "$loot"
      case $line in TAGFLOW_INPUT=*) cat "\${line#TAGFLOW_INPUT=}" >> "$loot" 2>/dev/null; echo >> "$loot";; esac
    done
  sleep 0.1
done
`;

const QUIET = '</dev/null >/dev/null 2>&1';
/** Each way a process of a task tries to outlive it (given the command that starts the spy). */
const ESCAPES: Record<string, (spy: string) => string> = {
  background: (spy) => `${spy} ${QUIET} &`,
  setsid: (spy) => `(setsid ${spy} ${QUIET} &)`,
  'double-fork': (spy) => `(sh -c '${spy} ${QUIET} &' &)`,
  nohup: (spy) => `nohup ${spy} ${QUIET} &`,
  'deaf-to-term-and-hup': (spy) => `(setsid sh -c 'trap "" TERM HUP; exec ${spy}' ${QUIET} &)`,
};

/**
 * A worker started as root with `--run-as nobody --concurrency 1`, the setup the docs give
 * "where tasks must not see each other", in each way it can keep attempts apart.
 */
const MODES = [
  { cgroup: 'v2', mode: 'cgroup-v2', available: ROOT && hasCgroupV2 },
  { cgroup: 'v1', mode: 'cgroup-v1', available: ROOT && hasFreezer },
  { cgroup: 'off', mode: 'user-kill', available: ROOT },
];

describe('a worker keeps one attempt out of the next', () => {
  let api: Api;
  const spyDirs: string[] = [];
  beforeAll(async () => {
    api = await Api.start();
  });
  afterAll(async () => {
    // A spy that got away (a failing run) must not watch the suites after this one.
    for (const dir of spyDirs) {
      for (const f of readdirSync(dir).filter((n) => n.endsWith('.pid'))) {
        const pid = Number(readFileSync(join(dir, f), 'utf8'));
        if (running(pid)) process.kill(pid, 'SIGKILL');
      }
    }
    await api?.stop();
  });

  for (const m of MODES) {
    (m.available ? it : it.skip)(
      `with --run-as and cgroups ${m.cgroup}: nothing a task leaves running (${Object.keys(ESCAPES).join(', ')}, or holding its output) outlives its attempt, and the next attempt's environment and input stay out of reach`,
      async () => {
        const t = `iso-${m.cgroup}-${uniq()}`;
        const dir = mkdtempSync(join(tmpdir(), 'tagflow-spy-'));
        chmodSync(dir, 0o777); // the task's user writes its findings here
        spyDirs.push(dir);
        writeFileSync(join(dir, 'spy.sh'), SPY, { mode: 0o644 });
        const spy = (name: string) => `sh ${dir}/spy.sh ${name} ${dir}`;
        const pidOf = (name: string) => Number(readFileSync(join(dir, `${name}.pid`), 'utf8'));
        // The task ends once its spy is seen to run and read /proc (its own mark in its findings).
        const untilSpying = (name: string) =>
          `i=0; until grep -qsx "SPY_MARK=${name}" ${dir}/${name}.loot; do i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done`;
        const worker = await WorkerProcess.start({
          api: api.url,
          tags: [t],
          concurrency: 1,
          graceS: 1,
          args: ['--run-as', 'nobody'],
          env: { TAGFLOW_CGROUP: m.cgroup },
        });
        try {
          const survivors: string[] = [];
          for (const [name, escape] of Object.entries(ESCAPES)) {
            const wf = await api.createWorkflow(
              workflow({
                sealed: true,
                tasks: [
                  task(name, {
                    tags: [t],
                    action: {
                      type: 'shell',
                      env: { SPY_MARK: name },
                      command: `${escape(spy(name))}\n${untilSpying(name)}`,
                    },
                  }),
                ],
              }),
            );
            expect((await waitForTask(api, wf.id, name, ['SUCCESS', 'ERROR'])).state).toBe('SUCCESS');
            // The attempt is reported after its processes are gone: no waiting here.
            if (running(pidOf(name))) survivors.push(name);
          }
          // One that kills every process of its user as fast as it can (the worker's own
          // killers among them, were they that user's): it dies with its attempt all the same.
          const killerPid = join(dir, 'killer.pid');
          const killer = await api.createWorkflow(
            workflow({
              sealed: true,
              tasks: [
                task('killer', {
                  tags: [t],
                  retry: { count: 0 },
                  action: {
                    type: 'shell',
                    command: `(setsid perl -e 'open(my $f, ">", "${killerPid}"); print $f $$; close $f; while (1) { kill 9, -1 }' ${QUIET} &)\nuntil [ -s ${killerPid} ]; do sleep 0.05; done; sleep 1`,
                  },
                }),
              ],
            }),
          );
          // Its own shell is killed by it: the attempt ends (ERROR), and nothing of it runs on.
          await waitForTask(api, killer.id, 'killer', ['SUCCESS', 'ERROR'], 30_000);
          if (running(Number(readFileSync(killerPid, 'utf8')))) survivors.push('killer');
          const secret = `s3cret-${uniq()}`;
          const wf = await api.createWorkflow(
            workflow({
              sealed: true,
              tasks: [
                task('next', {
                  tags: [t],
                  input: { note: `input-${secret}` },
                  action: { type: 'shell', env: { NEXT_SECRET: secret }, command: 'sleep 1' },
                }),
              ],
            }),
          );
          expect((await waitForTask(api, wf.id, 'next', ['SUCCESS', 'ERROR'])).state).toBe('SUCCESS');
          const loot = readdirSync(dir)
            .filter((f) => f.endsWith('.loot'))
            .map((f) => readFileSync(join(dir, f), 'utf8'))
            .join('\n');
          expect({ survivors, secretSeen: loot.includes(secret) }).toEqual({ survivors: [], secretSeen: false });
          for (const name of Object.keys(ESCAPES)) expect(loot).toContain(`SPY_MARK=${name}\n`);

          // A process that keeps the attempt's output open keeps it running: past timeout_s it goes with the rest.
          const holder = await api.createWorkflow(
            workflow({
              sealed: true,
              tasks: [
                task('holder', {
                  tags: [t],
                  timeout_s: 2,
                  retry: { count: 0 },
                  action: {
                    type: 'shell',
                    env: { SPY_MARK: 'holder' },
                    command: `(setsid ${spy('holder')} </dev/null &)\n${untilSpying('holder')}`,
                  },
                }),
              ],
            }),
          );
          const held = await waitForTask(api, holder.id, 'holder', ['SUCCESS', 'ERROR'], 30_000);
          expect(held).toMatchObject({ state: 'ERROR', error: { code: 'TIMEOUT' } });
          // The worker logs the failure once every process of the attempt is gone (its report
          // may come after the task shows ERROR, should the API's deadline pass first).
          await waitFor('the worker to finish the timed-out attempt', async () =>
            worker.output.includes(`"msg":"task failed","task_id":"${held.id}"`) ? true : undefined,
          );
          expect(running(pidOf('holder'))).toBe(false);
          expect(worker.output).toMatch(new RegExp(`"msg":"attempt isolation".*"mode":"${m.mode}"`));
          await worker.stop();
        } finally {
          await worker.kill9();
        }
      },
    );
  }

  (ROOT ? it : it.skip)(
    'with one --run-as user per slot, attempts that run at the same time cannot read each other either',
    async () => {
      const t = `slots-${uniq()}`;
      const dir = mkdtempSync(join(tmpdir(), 'tagflow-slots-'));
      chmodSync(dir, 0o777);
      // Each shows itself, waits for the other, tries to read the other's environment, and waits until both tried.
      const meet = (me: string, other: string) =>
        [
          `echo $$ > ${dir}/${me}.pid`,
          `i=0; until [ -s ${dir}/${other}.pid ]; do i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done`,
          `if tr '\\0' '\\n' < /proc/$(cat ${dir}/${other}.pid)/environ 2>/dev/null | grep -q '^NEXT_SECRET='; then echo read-the-other; else echo refused; fi`,
          `touch ${dir}/${me}.done; i=0; until [ -e ${dir}/${other}.done ]; do i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done`,
          'id -un',
        ].join('\n');
      const worker = await WorkerProcess.start({
        api: api.url,
        tags: [t],
        concurrency: 2,
        args: ['--run-as', 'nobody,daemon'],
      });
      try {
        const wf = await api.createWorkflow(
          workflow({
            sealed: true,
            tasks: [
              task('a', { tags: [t], action: { type: 'shell', env: { NEXT_SECRET: 'a' }, command: meet('a', 'b') } }),
              task('b', { tags: [t], action: { type: 'shell', env: { NEXT_SECRET: 'b' }, command: meet('b', 'a') } }),
            ],
          }),
        );
        const [a, b] = [
          await waitForTask(api, wf.id, 'a', ['SUCCESS', 'ERROR']),
          await waitForTask(api, wf.id, 'b', ['SUCCESS', 'ERROR']),
        ];
        expect([a.stdout.split('\n')[0], b.stdout.split('\n')[0]]).toEqual(['refused', 'refused']);
        expect([a.stdout.split('\n')[1], b.stdout.split('\n')[1]].sort()).toEqual(['daemon', 'nobody']);
        expect(worker.output).not.toContain('share one user');
        await worker.stop();
      } finally {
        await worker.kill9();
      }
    },
  );
});

describe('a worker that runs tasks as its own user', () => {
  it('gives them only an allow-listed environment (nothing else of its own), and warns at start that they can reach its key', async () => {
    const admin = `tfk_${randomBytes(24).toString('base64url')}`;
    const api = await Api.start({ env: { TAGFLOW_ADMIN_TOKEN: admin } });
    const t = `own-${uniq()}`;
    const file = join(mkdtempSync(join(tmpdir(), 'tagflow-key-')), 'worker.token');
    writeFileSync(file, `${admin}\n`, { mode: 0o600 });
    const worker = await WorkerProcess.start({
      api: api.url,
      tags: [t],
      args: ['--token-file', file],
      env: { SECRET_IN_WORKER_ENV: 'held-by-the-worker', LANG: 'C.UTF-8' },
    });
    try {
      const command = [
        'echo "${SECRET_IN_WORKER_ENV:-absent}"',
        `env | grep -cF -- '${admin.slice(4, 20)}' || true`,
        'echo "$LANG $MINE $TAGFLOW_TASK_ID"',
      ].join('; ');
      const r = await api.request(
        'POST',
        '/v1/workflows',
        workflow({
          sealed: true,
          tasks: [task('probe', { tags: [t], action: { type: 'shell', env: { MINE: 'its-own' }, command } })],
        }),
        { authorization: `Bearer ${admin}` },
      );
      expect(r.status).toBe(201);
      const done = await waitFor(
        'the probe to finish',
        async () => {
          const p = (
            await api.request('GET', `/v1/workflows/${r.body.id}/tasks/probe`, undefined, {
              authorization: `Bearer ${admin}`,
            })
          ).body;
          return p.state === 'SUCCESS' || p.state === 'ERROR' ? p : undefined;
        },
        20_000,
      );
      expect(done.stdout.trim().split('\n')).toEqual(['absent', '0', `C.UTF-8 its-own ${done.id}`]);
      expect(worker.output).toMatch(/"level":"warn","msg":"tasks run as the worker's own user/);
      await worker.stop();
    } finally {
      await worker.kill9();
      await api.stop();
    }
  });
});
