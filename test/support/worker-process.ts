import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { track, waitFor } from './harness.js';

export interface WorkerOptions {
  api: string;
  tags: string[];
  name?: string;
  concurrency?: number;
  graceS?: number;
  plugins?: string[];
  env?: Record<string, string>;
  workDir?: string;
  /** More command-line arguments (e.g. --token-file FILE). */
  args?: string[];
}

/** The real worker agent (`node dist/apps/worker/main.js`) as a child process. */
export class WorkerProcess {
  readonly logs: string[] = [];
  private readonly exited: Promise<number | null>;

  private constructor(
    readonly proc: ChildProcess,
    readonly workDir: string,
  ) {
    this.exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
    proc.stdout!.on('data', (c: Buffer) => this.logs.push(c.toString()));
    proc.stderr!.on('data', (c: Buffer) => this.logs.push(c.toString()));
  }

  static async start(o: WorkerOptions): Promise<WorkerProcess> {
    const args = [
      'dist/apps/worker/main.js',
      '--api',
      o.api,
      '--tags',
      o.tags.join(','),
      '--name',
      o.name ?? 'test-worker',
      '--concurrency',
      String(o.concurrency ?? 1),
      '--grace-s',
      String(o.graceS ?? 30),
      '--poll-wait-s',
      '5',
      '--work-dir',
      o.workDir ?? mkdtempSync(join(tmpdir(), 'tagflow-worker-test-')),
    ];
    for (const p of o.plugins ?? []) args.push('--plugin', p);
    args.push(...(o.args ?? []));
    const proc = track(
      spawn(process.execPath, args, {
        env: { PATH: process.env.PATH ?? '', ...o.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    const w = new WorkerProcess(proc, args[args.indexOf('--work-dir') + 1]);
    await waitFor(
      'the worker to register',
      async () =>
        w.logs.join('').includes('"msg":"registered"') ||
        (proc.exitCode !== null && Promise.reject(new Error(w.logs.join('')))),
      15_000,
    );
    return w;
  }

  get output(): string {
    return this.logs.join('');
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.kill(sig);
  }

  exit(): Promise<number | null> {
    return this.exited;
  }

  async kill9(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    this.proc.kill('SIGTERM');
    return this.exited;
  }
}

/** Whether a process with this pid is alive. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
