import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often the WAL is copied back into the database file. */
const EVERY_MS = 100;
/**
 * Frames (pages) the WAL may hold before the serving connection checkpoints in its COMMIT after
 * all (SQLite's own default is 1,000). SQLite rewinds the WAL only when a write begins after a
 * checkpoint copied every frame, and a passive one running beside a busy writer may never
 * catch up: past this many (16 MB of 4 KB pages) the writer copies the few frames the thread
 * has not, and the WAL starts over.
 */
export const SERVING_CHECKPOINT_FRAMES = 4000;
/** How long stop() waits for the thread to close its connection before it ends it. */
const STOP_WAIT_MS = 2000;

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

/** SQLite's own threshold: what the serving connection goes back to if the thread fails. */
const SQLITE_DEFAULT_FRAMES = 1000;

/** The serving connection (better-sqlite3's), as far as its checkpoint setting goes. */
interface Serving {
  pragma(statement: string): unknown;
}

/**
 * SQLite's WAL checkpoints, off the thread that serves requests. By default the connection
 * that commits the 1,000th page of the WAL copies the WAL back into the database file and
 * syncs it there, inside that COMMIT: better-sqlite3 is synchronous, so the whole process
 * stops for it (5-37 ms here, about one COMMIT in 30 under load; half the time every COMMIT
 * took, and the slowest percent of requests). Here the serving connection checkpoints only past
 * SERVING_CHECKPOINT_FRAMES, and then only what is left, while this thread's own connection
 * copies the WAL every EVERY_MS, concurrently with the writer (PASSIVE: neither waits for the
 * other). If the thread fails, the serving connection checkpoints as SQLite does by default
 * again, and `warn` is told.
 */
export class SqliteCheckpoints {
  private worker: Worker | null = null;
  private stopping = false;

  constructor(
    private readonly file: string,
    private readonly serving: Serving,
    private readonly warn: (why: string) => void,
  ) {}

  start(): void {
    this.serving.pragma(`wal_autocheckpoint = ${SERVING_CHECKPOINT_FRAMES}`);
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

  /**
   * Stops the thread once its connection is closed (before the serving connection closes, so
   * that one checkpoints last), or after STOP_WAIT_MS. The thread holds the process open while
   * it stops: by then it may be the last thing that does.
   */
  async stop(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.stopping = true;
    this.worker = null;
    worker.ref();
    let timer: NodeJS.Timeout | undefined;
    const stopped = new Promise<void>((done) => {
      worker.on('message', (m: { stopped?: boolean }) => m.stopped && done());
      worker.on('exit', () => done());
      timer = setTimeout(done, STOP_WAIT_MS);
    });
    worker.postMessage('stop');
    await stopped;
    clearTimeout(timer);
    await worker.terminate();
  }

  /** The thread failed: it is ended, and the serving connection checkpoints for itself from now on. */
  private fail(why: string): void {
    if (this.stopping) return;
    this.stopping = true;
    void this.worker?.terminate();
    this.worker = null;
    try {
      this.serving.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_FRAMES}`);
      this.warn(`WAL checkpoints are back in the serving thread: ${why}`);
    } catch (e) {
      this.warn(`WAL checkpoints stopped (${why}) and could not be taken back: ${String(e)}`);
    }
  }
}
