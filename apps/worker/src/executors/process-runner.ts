import { spawn } from 'node:child_process';
import type { ProcessResult, ProcessUser, RunOptions } from './executor.js';

export const LOG_TAIL_BYTES = 64 * 1024;
/** Between SIGTERM and SIGKILL when a process group is stopped. */
export const KILL_GRACE_MS = 5000;

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
 * with `user`, as that user (the worker runs as root).
 * When `signal` aborts: SIGTERM to the group, SIGKILL after the grace period.
 * `onOutput` sees each chunk of output as it is written (for live logs).
 */
export function runProcess(
  command: string,
  args: string[],
  options: RunOptions & { signal: AbortSignal; graceMs?: number; user?: ProcessUser; onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void },
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    // As another user, the directory is entered by that user (`env -C`), not by root before
    // the switch: a directory root may enter and the user may not stays closed to the task.
    const [file, argv, cwd] = options.user ? ['/usr/bin/env', ['-C', options.cwd ?? '/', '--', command, ...args], '/'] : [command, args, options.cwd];
    const child = spawn(file, argv, {
      cwd,
      env: options.env,
      // As another user, the child also drops the worker's supplementary groups (libuv calls setgroups(0)).
      uid: options.user?.uid,
      gid: options.user?.gid,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout = new TailBuffer();
    const stderr = new TailBuffer();
    child.stdout.on('data', (c: Buffer) => {
      stdout.push(c);
      options.onOutput?.('stdout', c);
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr.push(c);
      options.onOutput?.('stderr', c);
    });
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
      killTimer = setTimeout(() => killGroup('SIGKILL'), options.graceMs ?? KILL_GRACE_MS);
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
      resolve({ exitCode, signal: sig, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}
