import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import type { ProcessUser } from './executor.js';

/**
 * How a worker with `--run-as` makes sure no process of an attempt outlives it, chosen once
 * at start (cli/isolation.ts):
 * - `cgroup-v2`, `cgroup-v1`: each attempt gets a cgroup its first process enters before it
 *   runs task code; everything in it is killed when the attempt ends.
 * - `user-kill`: the worker owns the attempt's user (no one else runs as it), so every
 *   process of that user is killed when the attempt ends.
 * - `none`: neither is possible; a process a task detaches from its group survives it.
 */
export type IsolationMode = 'cgroup-v2' | 'cgroup-v1' | 'user-kill' | 'none';

/** Every process of one attempt, as a whole. */
export interface AttemptScope {
  /**
   * Puts a process inside before it runs anything of the task's (runProcess holds the new
   * process until this resolves). Absent where membership needs no step (a user of its own).
   */
  admit?(pid: number): Promise<void>;
  /** Sends `signal` once to every process of the attempt (the polite step of a stop). */
  signal(signal: NodeJS.Signals): Promise<void>;
  /** Kills every process of the attempt; resolves once none is left. Safe to call again. */
  killAll(): Promise<void>;
  /** After killAll: frees what the scope holds (its cgroup). */
  close(): Promise<void>;
}

export interface Isolation {
  readonly mode: IsolationMode;
  /** What start logs about it (where its cgroups live). */
  readonly details: Record<string, unknown>;
  /** The scope of a new attempt running as `user`. */
  open(user: ProcessUser): Promise<AttemptScope>;
  /** At the worker's stop, once no attempt runs: removes what it made. */
  close(): Promise<void>;
}

export type Warn = (msg: string, fields?: Record<string, unknown>) => void;

const NO_SCOPE: AttemptScope = { signal: async () => {}, killAll: async () => {}, close: async () => {} };

/** No guarantee: only the process group is stopped (runProcess), as without an isolation. */
export class NoIsolation implements Isolation {
  readonly mode = 'none';
  constructor(readonly details: Record<string, unknown>) {}
  open(): Promise<AttemptScope> {
    return Promise.resolve(NO_SCOPE);
  }
  async close(): Promise<void> {}
}

/**
 * For a user the worker owns: after the attempt the worker (root) stops every process of
 * that user with SIGSTOP, round after round until none of them runs (a stopped process can
 * neither fork nor signal, so one that kills whatever its user starts cannot dodge this),
 * then kills them all, until /proc shows none left.
 */
export class UserKillIsolation implements Isolation {
  readonly mode = 'user-kill';
  readonly details = {};
  constructor(private readonly warn: Warn) {}
  open(user: ProcessUser): Promise<AttemptScope> {
    return Promise.resolve(new UserKillScope(user, this.warn));
  }
  async close(): Promise<void> {}
}

class UserKillScope implements AttemptScope {
  private killing?: Promise<void>;
  constructor(
    private readonly user: ProcessUser,
    private readonly warn: Warn,
  ) {}

  signal(signal: NodeJS.Signals): Promise<void> {
    return killAsUser(this.user, signal);
  }

  killAll(): Promise<void> {
    const uid = this.user.uid;
    const owned = async () => (await processesOf(uid)).filter((p) => p.real === uid || p.saved === uid);
    this.killing ??= untilNoneLeft(
      async () => {
        for (let round = 0; round < STOP_ROUNDS; round++) {
          const running = (await owned()).filter((p) => !p.stopped);
          if (running.length === 0) break;
          for (const p of running) await signalIfTheirs(p.pid, uid, 'SIGSTOP');
        }
        for (const p of await owned()) await signalIfTheirs(p.pid, uid, 'SIGKILL');
        return (await owned()).map((p) => p.pid);
      },
      (left, error) =>
        this.warn('processes of a finished attempt are still alive; its slot waits for them', {
          uid: this.user.uid,
          pids: left,
          error,
        }),
    ).finally(() => (this.killing = undefined));
    return this.killing;
  }

  async close(): Promise<void> {}
}

/** Rounds of SIGSTOP a pass sends at most before it kills what it has stopped (the next pass goes on). */
const STOP_ROUNDS = 50;

/** Signals `pid` when it (still) belongs to `uid`: a pid read from /proc a moment ago may have been reused since. */
async function signalIfTheirs(pid: number, uid: number, signal: NodeJS.Signals): Promise<void> {
  try {
    const ids = parseStatus(pid, await readFile(`/proc/${pid}/status`, 'utf8'));
    if (ids && (ids.real === uid || ids.saved === uid)) process.kill(pid, signal);
  } catch {
    // gone meanwhile
  }
}

/** kill(-1, signal) as `user`: every process it may signal (its own), but the caller. */
function killAsUser(user: ProcessUser, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    const sig = signal.replace(/^SIG/, '');
    const p = spawn('/bin/sh', ['-c', `kill -s ${sig} -- -1`], {
      uid: user.uid,
      gid: user.gid,
      stdio: 'ignore',
      env: { PATH: '/usr/bin:/bin' },
    });
    p.on('error', () => resolve());
    p.on('close', () => resolve()); // non-zero when nothing was left to signal
  });
}

/**
 * Runs `pass` (which kills, and answers what is still alive) until nothing is. It never
 * gives up, so nothing of an attempt is left to meet the next one; `stuck` hears every 10 s
 * what is still alive, or why a pass failed.
 */
export async function untilNoneLeft(
  pass: () => Promise<number[]>,
  stuck: (left: number[], error?: string) => void,
): Promise<void> {
  let warnAt = Date.now() + 10_000;
  for (let round = 0; ; round++) {
    let left: number[] = [];
    let error: string | undefined;
    try {
      left = await pass();
      if (left.length === 0) return;
    } catch (e) {
      error = (e as Error).message;
    }
    if (Date.now() > warnAt || (error !== undefined && round === 0)) {
      stuck(left, error);
      warnAt = Date.now() + 10_000;
    }
    await new Promise((r) => setTimeout(r, Math.min(5 * 2 ** round, 200)));
  }
}

export interface ProcessIds {
  pid: number;
  real: number;
  effective: number;
  saved: number;
  /** Stopped (SIGSTOP) or traced. */
  stopped: boolean;
}

/** Live processes (zombies are dead already) that have `uid` as their real, effective or saved uid. */
export async function processesOf(uid: number): Promise<ProcessIds[]> {
  const found: ProcessIds[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let status: string;
    try {
      status = await readFile(`/proc/${name}/status`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const ids = parseStatus(Number(name), status);
    if (ids && [ids.real, ids.effective, ids.saved].includes(uid)) found.push(ids);
  }
  return found;
}

/** The uids of a live process from its /proc/PID/status; undefined for a zombie. */
export function parseStatus(pid: number, status: string): ProcessIds | undefined {
  if (/^State:\s+[ZX]/m.test(status)) return undefined;
  const m = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
  const stopped = /^State:\s+[Tt]/m.test(status);
  return m ? { pid, real: Number(m[1]), effective: Number(m[2]), saved: Number(m[3]), stopped } : undefined;
}
