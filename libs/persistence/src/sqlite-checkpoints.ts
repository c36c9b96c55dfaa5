import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often the WAL is copied back into the database file. */
const EVERY_MS = 100;

/**
 * Runs in the thread: its own connection to the file, a passive checkpoint every EVERY_MS
 * (it never waits for the writer, nor the writer for it). Stops on 'stop', closing its
 * connection, and says so.
 */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const Sqlite = require(workerData.module);
const db = new Sqlite(workerData.file);
let timer = null;
const tick = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  }
  timer = setTimeout(tick, workerData.everyMs);
};
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearTimeout(timer);
  db.close();
  parentPort.postMessage({ stopped: true });
  parentPort.close();
});
tick();
`;

/**
 * SQLite's WAL checkpoints, off the thread that serves requests. By default the connection
 * that commits the 1,000th page of the WAL copies it back into the database file and syncs it
 * there, inside that COMMIT: better-sqlite3 is synchronous, so the whole process stops for it
 * (5-25 ms here, about once every 30 transactions under load; half the time every COMMIT
 * took, and the slowest percent of requests). With `wal_autocheckpoint = 0` on the serving
 * connection, this thread's own connection checkpoints every EVERY_MS instead, concurrently
 * with the writer (PASSIVE: neither waits for the other). If the thread fails, the serving
 * connection checkpoints for itself again (`fallBack`).
 */
export class SqliteCheckpoints {
  private worker: Worker | null = null;
  private stopping = false;

  constructor(
    private readonly file: string,
    private readonly fallBack: (why: string) => void,
  ) {}

  start(): void {
    const worker = new Worker(THREAD, {
      eval: true,
      workerData: {
        file: this.file,
        module: createRequire(import.meta.url).resolve('better-sqlite3'),
        everyMs: EVERY_MS,
      },
    });
    worker.unref();
    worker.on('message', (m: { error?: string }) => {
      if (m.error) this.fail(`a checkpoint failed: ${m.error}`);
    });
    worker.on('error', (e) => this.fail(e.message));
    worker.on('exit', () => {
      if (!this.stopping) this.fail('the checkpoint thread stopped');
    });
    this.worker = worker;
  }

  /** Stops the thread once its connection is closed (before the serving connection closes, so that one checkpoints last). */
  async stop(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.stopping = true;
    this.worker = null;
    const stopped = new Promise<void>((done) => {
      worker.on('message', (m: { stopped?: boolean }) => m.stopped && done());
      worker.on('exit', () => done());
    });
    worker.postMessage('stop');
    await stopped;
    await worker.terminate();
  }

  private fail(why: string): void {
    if (this.stopping) return;
    this.stopping = true;
    void this.worker?.terminate();
    this.worker = null;
    this.fallBack(why);
  }
}
