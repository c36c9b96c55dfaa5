import { CgroupIsolation } from '../executors/cgroup-isolation.js';
import { NoIsolation, processesOf, UserKillIsolation, type Isolation } from '../executors/isolation.js';
import { ConfigError, type WorkerConfig } from './config.js';
import type { Logger } from './logger.js';
import type { RunAsUser } from './run-as.js';

/**
 * Picks, at start, how a worker with --run-as keeps an attempt's processes from outliving it,
 * and says which (`attempt isolation`), with a warning wherever attempts can still reach each other:
 * 1. a cgroup per attempt, where the worker can make one (`--cgroup auto`: v2, else v1's freezer);
 * 2. else, when the worker owns its users (no process of theirs runs at start, and no two
 *    attempts share one), killing every process of the attempt's user after it;
 * 3. else nothing: a process a task detaches survives it.
 */
export async function chooseIsolation(
  config: Pick<WorkerConfig, 'cgroup' | 'concurrency'>,
  users: RunAsUser[],
  log: Logger,
): Promise<Isolation> {
  const warn = (msg: string, fields?: Record<string, unknown>) => log('warn', msg, fields);
  const isolation =
    (await cgroupIsolation(config.cgroup, log)) ?? (await userIsolation(config.concurrency, users, warn));
  log('info', 'attempt isolation', { mode: isolation.mode, ...isolation.details });
  if (isolation.mode === 'none') {
    warn(
      'processes a task leaves running (setsid, a double fork) survive its attempt and can read later attempts of the same user (environment, input, files); mount a writable cgroup hierarchy, or give the worker users no other process runs as',
      isolation.details,
    );
  }
  if (users.length === 1 && config.concurrency > 1) {
    warn(
      "attempts that run at the same time share one user: each can read the other's environment, input and files while both run; give --run-as one user per slot (--run-as u1,u2,...)",
      { user: users[0].name, concurrency: config.concurrency },
    );
  }
  return isolation;
}

async function cgroupIsolation(choice: WorkerConfig['cgroup'], log: Logger): Promise<Isolation | undefined> {
  if (choice === 'off') return undefined;
  for (const version of choice === 'auto' ? ([2, 1] as const) : ([choice === 'v2' ? 2 : 1] as const)) {
    try {
      return await CgroupIsolation.create(version, (msg, fields) => log('warn', msg, fields));
    } catch (e) {
      const why = (e as Error).message;
      if (choice !== 'auto')
        throw new ConfigError(
          `--cgroup ${choice}: cannot make a cgroup per attempt (${why}); use --cgroup auto or off`,
        );
      log('info', `no cgroup v${version} for attempts`, { reason: why });
    }
  }
  return undefined;
}

async function userIsolation(
  concurrency: number,
  users: RunAsUser[],
  warn: (msg: string, fields?: Record<string, unknown>) => void,
): Promise<Isolation> {
  if (users.length === 1 && concurrency > 1) {
    return new NoIsolation({
      reason: `--concurrency ${concurrency} with one user: killing that user's processes after one attempt would kill the others`,
    });
  }
  for (const user of users) {
    const others = await processesOf(user.uid);
    if (others.length > 0) {
      return new NoIsolation({
        reason: `other processes run as ${user.name}, so the worker may not kill every process of that user`,
        pids: others.slice(0, 10).map((p) => p.pid),
      });
    }
  }
  return new UserKillIsolation(warn);
}
