import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { checkAnswer, recordedAnswerProblems } from './contract.js';

/**
 * End-to-end harness: the real API (`node dist/apps/api/main.js`, built by `npm test`)
 * as a child process, against the real Redis and database started by scripts/test.sh.
 * Each suite gets a fresh database and a fresh Redis key prefix.
 */

export const DATABASE = (process.env.TEST_DATABASE ?? 'sqlite') as 'sqlite' | 'postgres';

/**
 * Every process a suite starts. A test that fails half-way may leave some running; after
 * each test file they are killed (test/support/teardown.ts), so a failing run ends and
 * leaves nothing behind.
 */
const children = new Set<ChildProcess>();

export function killTracked(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  }
  groups.clear();
}

const groups = new Set<number>();

/**
 * A child started with `detached: true` leads its own process group: what it starts in turn
 * (the workers of an example) is killed with it, even when the child itself has exited.
 */
export function trackGroup<T extends ChildProcess>(child: T): T {
  if (child.pid !== undefined) groups.add(child.pid);
  return track(child);
}

export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
const WORK = process.env.TEST_WORK_DIR ?? join(tmpdir(), 'tagflow-e2e');
/** The longest any request of a suite may take to be answered in full (the longest wait asked is 30 s). */
const REQUEST_WITHIN_MS = 45_000;

export function redisUrl(): string {
  const url = process.env.TEST_REDIS_URL;
  if (!url) throw new Error('TEST_REDIS_URL is not set: run the suites through `npm test`');
  return url;
}

export function shortId(): string {
  return randomUUID().replace(/-/g, '').slice(0, 12);
}

/**
 * A new database of the kind under test, with no data. `npm test` migrates one database of
 * each kind at its start (TEST_SQLITE_TEMPLATE, TEST_PG_TEMPLATE) and each new one is a copy,
 * so migrations run once a run; without those, or with `migrated: false`, it is empty and the
 * API migrates it as it starts. Under `npm test -- --pgbouncer` PostgreSQL databases are made
 * through the server itself (TEST_PG_DIRECT_URL: PgBouncer cannot run CREATE DATABASE for its
 * clients) and the URL returned goes through the bouncer (TEST_PG_URL).
 */
export async function freshDatabaseUrl(opts: { migrated?: boolean } = {}): Promise<string> {
  const id = shortId();
  const migrated = opts.migrated ?? true;
  if (DATABASE === 'sqlite') {
    mkdirSync(join(WORK, 'sqlite'), { recursive: true });
    const file = join(WORK, 'sqlite', `${id}.db`);
    if (migrated && process.env.TEST_SQLITE_TEMPLATE) copyFileSync(process.env.TEST_SQLITE_TEMPLATE, file);
    return `sqlite:${file}`;
  }
  const served = process.env.TEST_PG_URL;
  if (!served) throw new Error('TEST_PG_URL is not set: run the suites through `npm test`');
  const client = new pg.Client({ connectionString: process.env.TEST_PG_DIRECT_URL ?? served });
  await client.connect();
  try {
    const template = migrated ? process.env.TEST_PG_TEMPLATE : undefined;
    await client.query(`CREATE DATABASE tf_${id}${template ? ` TEMPLATE ${template}` : ''}`);
  } finally {
    await client.end();
  }
  const url = new URL(served);
  url.pathname = `/tf_${id}`;
  return url.toString();
}

export interface HttpResult<T = any> {
  status: number;
  body: T;
}

export interface ApiOptions {
  databaseUrl?: string;
  prefix?: string;
  env?: Record<string, string>;
}

/**
 * What a process is doing, for a failure message: its state (R running, S sleeping, D in I/O),
 * the CPU it has used, and the kernel function it sleeps in (a full pipe: `pipe_write`).
 */
function processState(pid: number | undefined): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const cpuS = (Number(stat[11]) + Number(stat[12])) / 100;
    const wchan = readFileSync(`/proc/${pid}/wchan`, 'utf8');
    return `state ${stat[0]}, ${cpuS} s of CPU, waiting in ${wchan || '-'}`;
  } catch {
    return 'its state could not be read';
  }
}

/** The answer logs of the API processes this suite started (answer-recorder.mjs). */
const answerLogs: string[] = [];

function answerLog(): string {
  const dir = join(WORK, 'answers');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${process.pid}-${shortId()}.jsonl`);
  answerLogs.push(file);
  return file;
}

/**
 * Checks every answer the suite's API processes sent, to anyone, against the OpenAPI
 * document (their workers', command lines' and clients' too, not only the harness's own
 * requests); throws naming each problem. Run after each e2e file (teardown.ts).
 */
export function checkRecordedAnswers(): void {
  const lines: string[] = [];
  for (const file of answerLogs.splice(0)) {
    if (!existsSync(file)) continue;
    lines.push(...readFileSync(file, 'utf8').split('\n'));
    rmSync(file, { force: true });
  }
  const problems = recordedAnswerProblems(lines);
  if (problems.length > 0)
    throw new Error(
      `answers the API sent that its document (docs/openapi.json) does not allow:\n  ${problems.slice(0, 30).join('\n  ')}`,
    );
}

export class Api {
  private exited: Promise<number | null>;
  readonly logs: string[] = [];

  private constructor(
    readonly proc: ChildProcess,
    readonly url: string,
    readonly databaseUrl: string,
    readonly prefix: string,
    exited: Promise<number | null>,
  ) {
    this.exited = exited;
  }

  static async start(opts: ApiOptions = {}): Promise<Api> {
    const databaseUrl = opts.databaseUrl ?? (await freshDatabaseUrl());
    const prefix = opts.prefix ?? `t${shortId()}`;
    const answers = answerLog();
    const proc = track(
      spawn(process.execPath, ['dist/apps/api/main.js'], {
        env: {
          PATH: process.env.PATH ?? '',
          PORT: '0',
          HOST: '127.0.0.1',
          DATABASE_URL: databaseUrl,
          REDIS_URL: redisUrl(),
          QUEUE_PREFIX: prefix,
          RECONCILE_INTERVAL_MS: '200',
          LOG_LEVEL: 'info',
          // Named statements where the run says so (directly on PostgreSQL; not through PgBouncer).
          ...(process.env.TEST_PG_PREPARED ? { DATABASE_PREPARED_STATEMENTS: process.env.TEST_PG_PREPARED } : {}),
          ...opts.env,
          // Every answer it sends is recorded, and checked against the document after the suite.
          TEST_ANSWER_LOG: answers,
          NODE_OPTIONS: [
            `--import ${pathToFileURL(resolve('test/support/answer-recorder.mjs')).href}`,
            opts.env?.NODE_OPTIONS,
          ]
            .filter(Boolean)
            .join(' '),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    const logs: string[] = [];
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`API did not start within 30 s (${processState(proc.pid)}):\n${logs.join('')}`)),
        30_000,
      );
      // Its stdout so far: the line may arrive split over two chunks.
      let out = '';
      const onData = (chunk: Buffer) => {
        logs.push(chunk.toString());
        out += chunk.toString();
        const m = /"msg":"tagflow api listening".*?"port":(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', (c: Buffer) => logs.push(c.toString()));
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`API exited with ${code} before listening:\n${logs.join('')}`));
      });
    });
    const api = new Api(proc, `http://127.0.0.1:${port}`, databaseUrl, prefix, exited);
    api.logs.push(...logs);
    // A 500 fails the suite (the answer check); the API's own line says which error it was.
    void exited.then(() => {
      const unhandled = api.logs
        .join('')
        .split('\n')
        .filter((line) => line.includes('"unhandled error"'));
      if (unhandled.length > 0) console.error(`the API at ${api.url} logged:\n${unhandled.join('\n')}`);
    });
    proc.stdout.on('data', (c: Buffer) => api.logs.push(c.toString()));
    return api;
  }

  /** Graceful stop (SIGTERM); resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    this.proc.kill('SIGTERM');
    return this.exited;
  }

  async kill9(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async request<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<HttpResult<T>> {
    // Bounded, so an answer that never ends (a stream let in by mistake) fails naming the route.
    const signal = AbortSignal.timeout(REQUEST_WITHIN_MS);
    const answered = async () => {
      const res = await fetch(this.url + path, {
        method,
        headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
        signal,
      });
      return { res, text: await res.text() };
    };
    const { res, text } = await answered().catch((e: unknown) => {
      if (!signal.aborted) throw e;
      throw new Error(`${method} ${path} was not answered in full within ${REQUEST_WITHIN_MS} ms`);
    });
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // keep the text
    }
    checkAnswer(method, path, res.status, parsed, res.headers.get('content-type') ?? '');
    return { status: res.status, body: parsed as T };
  }

  get<T = any>(path: string) {
    return this.request<T>('GET', path);
  }
  post<T = any>(path: string, body: unknown = {}) {
    return this.request<T>('POST', path, body);
  }
  patch<T = any>(path: string, body: unknown) {
    return this.request<T>('PATCH', path, body);
  }
  del<T = any>(path: string) {
    return this.request<T>('DELETE', path);
  }

  /** A value from GET /metrics (first sample of that name). */
  async metric(name: string): Promise<number> {
    const text = (await this.get<string>('/metrics')).body;
    const line = String(text)
      .split('\n')
      .find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line ? Number(line.split(' ').pop()) : NaN;
  }

  /** Waits until at least `n` long-polls are parked in this API process. */
  async pollsParked(n = 1): Promise<void> {
    // A setup step, not what is measured: a thousand polls parking on a loaded CI machine took over 10 s.
    await waitFor(`${n} parked poll(s)`, async () => (await this.metric('tagflow_polls_waiting')) >= n, 30_000);
  }

  // ---- acting as a worker ----

  async poll(
    tags: string[],
    opts: { wait_s?: number; max_tasks?: number; worker_id?: string } = {},
  ): Promise<LeasedTask[]> {
    const r = await this.post<{ tasks: LeasedTask[] }>('/v1/tasks/poll', { tags, wait_s: 0, ...opts });
    if (r.status !== 200) throw new Error(`poll failed: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.tasks;
  }

  /** Polls until one task arrives (or the deadline passes). */
  async take(tags: string[], waitS = 10): Promise<LeasedTask> {
    const [task] = await this.poll(tags, { wait_s: waitS });
    if (!task) throw new Error(`no task for tags [${tags.join(', ')}] within ${waitS} s`);
    return task;
  }

  complete(task: LeasedTask, output: object = {}, extra: object = {}) {
    return this.post(`/v1/tasks/${task.id}/complete`, { lease_token: task.lease.token, output, ...extra });
  }

  fail(task: LeasedTask, error: { message: string; code?: string; retryable?: boolean }, extra: object = {}) {
    return this.post(`/v1/tasks/${task.id}/fail`, { lease_token: task.lease.token, error, ...extra });
  }

  async workflow(id: string): Promise<any> {
    return (await this.get(`/v1/workflows/${id}`)).body;
  }

  async task(workflowId: string, name: string): Promise<any> {
    return (await this.get(`/v1/workflows/${workflowId}/tasks/${name}`)).body;
  }

  /** Creates a workflow and fails the test with the API's answer if that did not work. */
  async createWorkflow(spec: object): Promise<any> {
    const r = await this.post('/v1/workflows', spec);
    if (r.status !== 201) throw new Error(`create workflow: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

export interface LeasedTask {
  id: string;
  workflow_id: string;
  name: string;
  tags: string[];
  state: string;
  attempt: number;
  input: Record<string, unknown>;
  lease: { token: string; expires_at: string };
  [key: string]: unknown;
}

/** Waits until `check` returns something truthy; fails with `what` at the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until a task of the workflow is in one of `states` and returns it. */
export function waitForTask(
  api: Api,
  workflowId: string,
  name: string,
  states: string[],
  timeoutMs = 20_000,
): Promise<any> {
  return waitFor(
    `task ${name} to be ${states.join('|')}`,
    async () => {
      const t = await api.task(workflowId, name);
      return states.includes(t.state) ? t : undefined;
    },
    timeoutMs,
  );
}

/** A loopback port nothing listens on now (for an API that must come back on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Waits until the workflow is in one of `states` and returns it. */
export function waitForWorkflow(api: Api, id: string, states: string[], timeoutMs = 10_000): Promise<any> {
  return waitFor(
    `workflow ${id} to be ${states.join('|')}`,
    async () => {
      const wf = await api.workflow(id);
      return states.includes(wf.state) ? wf : undefined;
    },
    timeoutMs,
  );
}

// ---- factories ----

/**
 * A task spec. Unless told otherwise it carries the tag `never-polled`: an untagged task fits
 * every poll (a poll's tags are capabilities), and would be taken by whichever test polls next.
 */
export function task(name: string, overrides: Record<string, unknown> = {}) {
  return { name, action: { type: 'noop' }, tags: ['never-polled'], ...overrides };
}

export function workflow(overrides: Record<string, unknown> = {}) {
  return { name: `wf-${shortId()}`, ...overrides };
}

/** Reads a whole `text/event-stream` answer (one that ends by itself) into events. */
export async function readStream(res: Response): Promise<{ event: string; id?: string; data: string }[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((b) => b.trim() && !b.startsWith(':') && !b.startsWith('retry:'))
    .map((block) => {
      const e: { event: string; id?: string; data: string } = { event: 'message', data: '' };
      for (const line of block.split('\n')) {
        const [field, ...rest] = line.split(': ');
        if (field === 'event') e.event = rest.join(': ');
        else if (field === 'id') e.id = rest.join(': ');
        else if (field === 'data') e.data = rest.join(': ');
      }
      return e;
    });
}
