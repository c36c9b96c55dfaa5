import { spawn } from 'node:child_process';
import { STOP_GRACE_MS } from '@tagflow/domain';
import type { Writable } from 'node:stream';
import type { ProcessResult, ProcessUser, RunOptions } from './executor.js';
import { HELD_ENV, heldCommand, releaseScript } from './held-start.js';
import type { AttemptScope } from './isolation.js';

export const LOG_TAIL_BYTES = 64 * 1024;
/** Between SIGTERM and SIGKILL when a process group is stopped (the API waits that long and more past a timeout). */
export const KILL_GRACE_MS = STOP_GRACE_MS;

/** Keeps the last `limit` bytes of a stream. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly limit = LOG_TAIL_BYTES) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0].length >= this.limit) {
      this.size -= this.chunks.shift()!.length;
      this.truncated = true;
    }
  }

  toString(): string {
    let buf = Buffer.concat(this.chunks);
    if (buf.length > this.limit) {
      buf = buf.subarray(buf.length - this.limit);
      this.truncated = true;
    }
    // Do not start in the middle of a UTF-8 character.
    let start = 0;
    while (start < buf.length && start < 4 && (buf[start] & 0xc0) === 0x80) start++;
    return buf.subarray(start).toString('utf8');
  }
}

/**
 * Runs a process in its own process group, so stopping it stops everything it started;
 * with `user`, as that user (the worker runs as root); with `scope`, inside the attempt's
 * scope, which also reaches what left the group.
 * When `signal` aborts: SIGTERM to the group (and the scope), SIGKILL after the grace period.
 * `onOutput` sees each chunk of output as it is written (for live logs).
 */
export function runProcess(
  command: string,
  args: string[],
  options: RunOptions & {
    signal: AbortSignal;
    graceMs?: number;
    user?: ProcessUser;
    scope?: AttemptScope;
    onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  },
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    // As another user, the directory is entered by that user (`env -C`), not by root before
    // the switch: a directory root may enter and the user may not stays closed to the task.
    const [asUser, asUserArgs, cwd] = options.user
      ? ['/usr/bin/env', ['-C', options.cwd ?? '/', '--', command, ...args], '/']
      : [command, args, options.cwd];
    // With a scope that admits processes, the process is held until it is inside (held-start.ts).
    const held = options.scope?.admit !== undefined;
    let release = '';
    try {
      if (held) release = releaseScript(options.env ?? {});
    } catch (e) {
      reject(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    const [file, argv] = held ? heldCommand(asUser, asUserArgs) : [asUser, asUserArgs];
    const child = spawn(file, argv, {
      cwd,
      env: held ? HELD_ENV : options.env,
      // As another user, the child also drops the worker's supplementary groups (libuv calls setgroups(0)).
      uid: options.user?.uid,
      gid: options.user?.gid,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', ...(held ? ['pipe' as const] : [])],
    });
    const stdout = new TailBuffer();
    const stderr = new TailBuffer();
    child.stdout!.on('data', (c: Buffer) => {
      stdout.push(c);
      options.onOutput?.('stdout', c);
    });
    child.stderr!.on('data', (c: Buffer) => {
      stderr.push(c);
      options.onOutput?.('stderr', c);
    });
    let refused: Error | undefined;
    if (held && child.pid !== undefined) {
      const gate = child.stdio[3] as Writable;
      gate.on('error', () => {}); // the child is gone: 'close' tells
      options.scope!.admit!(child.pid).then(
        () => gate.end(release),
        (e: unknown) => {
          refused = new Error(`could not put the task's process in its cgroup: ${(e as Error).message}`);
          gate.destroy();
        },
      );
    }
    let killTimer: NodeJS.Timeout | undefined;
    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    const onAbort = () => {
      killGroup('SIGTERM');
      options.scope?.signal('SIGTERM').catch(() => {}); // the SIGKILL below does not depend on it
      killTimer = setTimeout(() => {
        killGroup('SIGKILL');
        // What left the group may still hold the output open: 'close' waits for it.
        options.scope?.killAll().catch(() => {}); // the attempt's end kills again, and says why it could not
      }, options.graceMs ?? KILL_GRACE_MS);
    };
    if (options.signal.aborted) onAbort();
    else options.signal.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      options.signal.removeEventListener('abort', onAbort);
      clearTimeout(killTimer);
      reject(e);
    });
    child.on('close', (exitCode, sig) => {
      options.signal.removeEventListener('abort', onAbort);
      clearTimeout(killTimer);
      // Whatever the group left behind goes with it (as another user, always: a process left
      // running could reach the next attempt of that user).
      if (options.signal.aborted || options.user) killGroup('SIGKILL');
      if (refused) reject(refused);
      else resolve({ exitCode, signal: sig, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}
