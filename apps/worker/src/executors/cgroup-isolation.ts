import { access, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runProcess } from './process-runner.js';
import { untilNoneLeft, type AttemptScope, type Isolation, type Warn } from './isolation.js';

/**
 * A cgroup per attempt. The worker's process tree is not enough: a task can leave its
 * process group (`setsid`), its parent (a double fork) and ignore SIGTERM and SIGHUP, but
 * it cannot leave its cgroup (moving a process needs write access to root's cgroup.procs).
 *
 * Under the worker's own cgroup in the hierarchy it makes `tagflow-worker.PID/attempt-N`.
 * cgroup v2 (the unified hierarchy) needs no controller: `cgroup.kill` (Linux 5.14) kills
 * the whole cgroup at once; without it the cgroup is frozen (`cgroup.freeze`, Linux 5.2)
 * while its processes are killed one by one, so none can fork meanwhile. cgroup v1 uses the
 * freezer hierarchy the same way (a frozen process dies once thawed).
 */
export class CgroupIsolation implements Isolation {
  readonly mode: 'cgroup-v2' | 'cgroup-v1';
  private attempts = 0;

  private constructor(
    readonly version: 1 | 2,
    private readonly base: string,
    private readonly warn: Warn,
  ) {
    this.mode = version === 2 ? 'cgroup-v2' : 'cgroup-v1';
  }

  get details(): Record<string, unknown> {
    return { cgroup: this.base };
  }

  /** Makes the worker's cgroup and tries one attempt's, or says why that is not possible here. */
  static async create(
    version: 1 | 2,
    warn: Warn,
    proc = { mountinfo: '/proc/self/mountinfo', cgroup: '/proc/self/cgroup' },
  ): Promise<CgroupIsolation> {
    const [mountinfo, own] = await Promise.all([readFile(proc.mountinfo, 'utf8'), readFile(proc.cgroup, 'utf8')]);
    const parent = cgroupDir(version, mountinfo, own);
    if (!parent)
      throw new Error(
        version === 2 ? 'no cgroup2 file system is mounted' : 'no cgroup v1 freezer hierarchy is mounted',
      );
    await removeStale(version, parent, warn);
    const isolation = new CgroupIsolation(version, join(parent, `tagflow-worker.${process.pid}`), warn);
    await mkdir(isolation.base, { recursive: true });
    try {
      // One process through the whole path (held, admitted, let go), so a refusal shows now, not on every task.
      const probe = await isolation.open();
      try {
        const r = await runProcess('/bin/sh', ['-c', 'exit 0'], {
          env: { PATH: '/usr/bin:/bin' },
          signal: new AbortController().signal,
          scope: probe,
        });
        if (r.exitCode !== 0) throw new Error(`a process put in an attempt's cgroup exited ${r.exitCode ?? r.signal}`);
      } finally {
        await probe.killAll();
        await probe.close();
      }
    } catch (e) {
      await rmdir(isolation.base).catch(() => {});
      throw e;
    }
    return isolation;
  }

  async open(): Promise<AttemptScope> {
    const dir = join(this.base, `attempt-${++this.attempts}`);
    await mkdir(dir);
    const scope = new CgroupScope(this.version, dir, this.warn);
    if (
      this.version === 2 &&
      !(await exists(join(dir, 'cgroup.kill'))) &&
      !(await exists(join(dir, 'cgroup.freeze')))
    ) {
      await rmdir(dir);
      throw new Error("this kernel's cgroup v2 has neither cgroup.kill nor cgroup.freeze (Linux 5.2 or later has)");
    }
    if (this.version === 1 && !(await exists(join(dir, 'freezer.state')))) {
      await rmdir(dir);
      throw new Error(`${dir} has no freezer.state`);
    }
    return scope;
  }

  async close(): Promise<void> {
    await rmdir(this.base).catch((e: NodeJS.ErrnoException) =>
      this.warn("could not remove the worker's cgroup", { cgroup: this.base, error: e.message }),
    );
  }
}

class CgroupScope implements AttemptScope {
  private killing?: Promise<void>;
  constructor(
    private readonly version: 1 | 2,
    private readonly dir: string,
    private readonly warn: Warn,
  ) {}

  admit(pid: number): Promise<void> {
    return writeFile(join(this.dir, 'cgroup.procs'), String(pid));
  }

  async signal(signal: NodeJS.Signals): Promise<void> {
    for (const pid of await this.pids()) kill(pid, signal);
  }

  killAll(): Promise<void> {
    this.killing ??= untilNoneLeft(
      () => this.killPass(),
      (left, error) =>
        this.warn('processes of a finished attempt are still alive; its slot waits for them', {
          cgroup: this.dir,
          pids: left,
          error,
        }),
    ).finally(() => (this.killing = undefined));
    return this.killing;
  }

  /** One pass: kills what is in the cgroup; answers what is still listed. */
  private async killPass(): Promise<number[]> {
    if (this.version === 2 && (await exists(join(this.dir, 'cgroup.kill')))) {
      if ((await this.pids()).length > 0) await writeFile(join(this.dir, 'cgroup.kill'), '1');
      return this.pids();
    }
    if ((await this.pids()).length === 0) return [];
    await this.freeze(true);
    try {
      for (const pid of await this.pids()) kill(pid, 'SIGKILL');
    } finally {
      await this.freeze(false);
    }
    return this.pids();
  }

  /** Freezes or thaws the cgroup; a freeze is waited for (briefly: a process stuck in the kernel may never freeze). */
  private async freeze(on: boolean): Promise<void> {
    const [file, value, done] =
      this.version === 2
        ? [
            'cgroup.freeze',
            on ? '1' : '0',
            async () => /^frozen 1$/m.test(await readFile(join(this.dir, 'cgroup.events'), 'utf8')),
          ]
        : [
            'freezer.state',
            on ? 'FROZEN' : 'THAWED',
            async () => (await readFile(join(this.dir, 'freezer.state'), 'utf8')).trim() === 'FROZEN',
          ];
    await writeFile(join(this.dir, file), value);
    for (let i = 0; on && i < 100 && !(await done()); i++) await new Promise((r) => setTimeout(r, 5));
  }

  private async pids(): Promise<number[]> {
    let text: string;
    try {
      text = await readFile(join(this.dir, 'cgroup.procs'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []; // removed: only an empty cgroup can be
      throw e;
    }
    return text.split('\n').filter(Boolean).map(Number);
  }

  async close(): Promise<void> {
    // A cgroup whose last process has just been reaped may still count as busy for a moment.
    for (let i = 0; ; i++) {
      try {
        await rmdir(this.dir);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || i >= 50) throw e;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }
}

/**
 * The directory of the worker's own cgroup: where the hierarchy is mounted plus the path
 * /proc/self/cgroup gives (less the mount's root, for a hierarchy mounted from inside).
 */
export function cgroupDir(version: 1 | 2, mountinfo: string, procCgroup: string): string | undefined {
  const line = procCgroup.split('\n').find((l) => {
    const [id, controllers] = l.split(':');
    return version === 2 ? id === '0' && controllers === '' : (controllers ?? '').split(',').includes('freezer');
  });
  if (!line) return undefined;
  const own = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
  for (const m of mountinfo.split('\n')) {
    const [before, after] = m.split(' - ');
    if (!after) continue;
    const [, , , root, point] = before.split(' ');
    const [type, , options] = after.split(' ');
    const matches =
      version === 2 ? type === 'cgroup2' : type === 'cgroup' && (options ?? '').split(',').includes('freezer');
    if (!matches || !(own === root || own.startsWith(root === '/' ? '/' : `${root}/`))) continue;
    return join(
      point,
      ...own
        .slice(root === '/' ? 0 : root.length)
        .split('/')
        .filter(Boolean),
    );
  }
  return undefined;
}

/**
 * Cgroups of workers that are gone (killed without their stop): what runs in them was an
 * attempt, and would otherwise meet the attempts of this worker. A worker still alive keeps its own.
 */
async function removeStale(version: 1 | 2, parent: string, warn: Warn): Promise<void> {
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^tagflow-worker\.(\d+)$/.exec(name);
    if (!m || Number(m[1]) === process.pid || (await exists(`/proc/${m[1]}`))) continue;
    const base = join(parent, name);
    for (const attempt of (await readdir(base)).filter((n) => n.startsWith('attempt-'))) {
      const scope = new CgroupScope(version, join(base, attempt), warn);
      await scope.killAll();
      await scope.close();
    }
    await rmdir(base);
    warn('removed the cgroup of a worker that did not stop (what ran in it was killed)', { cgroup: base });
  }
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
