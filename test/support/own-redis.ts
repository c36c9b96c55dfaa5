import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, track, waitFor } from './harness.js';

/**
 * A Redis of one suite's own, so it can be stopped, frozen, flushed or have its clients
 * killed and started again without touching the run's shared Redis (and the suites that
 * run beside it).
 */
export class OwnRedis {
  private proc: ChildProcess | null = null;
  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<OwnRedis> {
    const r = new OwnRedis(await freePort(), mkdtempSync(join(tmpdir(), 'tagflow-redis-')));
    await r.up();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    const proc = track(
      spawn(
        'redis-server',
        ['--bind', '127.0.0.1', '--port', String(this.port), '--dir', this.dir, '--save', '', '--appendonly', 'yes'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    this.proc = proc;
    const logs: string[] = [];
    proc.stdout.on('data', (c: Buffer) => logs.push(c.toString()));
    await waitFor(
      'redis to accept connections',
      async () =>
        logs.join('').includes('Ready to accept connections') ||
        (proc.exitCode !== null && Promise.reject(new Error(logs.join('')))),
      10_000,
    );
  }

  async down(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  }

  freeze(): void {
    this.proc?.kill('SIGSTOP');
  }

  thaw(): void {
    this.proc?.kill('SIGCONT');
  }

  /** Stops it for good and removes its files. */
  async remove(): Promise<void> {
    this.thaw();
    await this.down();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
