#!/usr/bin/env node
// Tagflow benchmarks: `npm run bench` (after `npm run build`). Starts its own Redis and
// PostgreSQL (as scripts/test.sh does) and, per database, its own API; drives it over
// HTTP with in-process polling clients that complete noop tasks; prints a table and
// writes JSON to bench/results/. Sizes: --tasks 20000 --pollers 16 --chain 1000
// --scale 100000 --groups 100 --tags 1000 --fanout 33000 --fanout-policy continue --requests 20000 --db sqlite,postgres --only throughput,ceiling,probe,workers,workers-one,handoff,handoff-batch,burst,scale,tags,fanout,route
// --redis single|sentinel|cluster (one redis-server; a master, a replica and three sentinels;
// a cluster of three masters with a replica each: the API and the raw BullMQ ceiling use it).
// --client keep-alive|fetch: the bench's own clients send over the bundled worker's HTTP client (default) or fetch.
// --accept-only: scale stops once its workflow is accepted and sealed.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import http from 'node:http';
import { Queue, Worker } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import pg from 'pg';
import { TagflowClient } from '../dist/libs/client/src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    tasks: { type: 'string', default: '20000' },
    pollers: { type: 'string', default: '16' },
    chain: { type: 'string', default: '1000' },
    'warm-up': { type: 'string', default: '1000' },
    scale: { type: 'string', default: '100000' },
    groups: { type: 'string', default: '100' },
    // scale: stop once the workflow is accepted and sealed (its accept alone, in a quarter of the time).
    'accept-only': { type: 'boolean', default: false },
    tags: { type: 'string', default: '1000' },
    fanout: { type: 'string', default: '33000' },
    requests: { type: 'string', default: '20000' },
    'fanout-policy': { type: 'string', default: 'continue' },
    db: { type: 'string', default: 'sqlite,postgres' },
    redis: { type: 'string', default: 'single' },
    // The bench's own clients: over the bundled worker's HTTP client (keep-alive), or fetch.
    client: { type: 'string', default: 'keep-alive' },
    only: {
      type: 'string',
      default: 'throughput,ceiling,probe,workers,workers-one,handoff,handoff-batch,burst,scale,tags,fanout,route',
    },
  },
});
const FANOUT = Number(opt.fanout);
const FANOUT_POLICY = opt['fanout-policy'];
const N = Number(opt.tasks),
  P = Number(opt.pollers),
  CHAIN = Number(opt.chain),
  WARM_UP = Number(opt['warm-up']),
  SCALE = Number(opt.scale),
  GROUPS = Number(opt.groups),
  TAGS = Number(opt.tags),
  REQUESTS = Number(opt.requests);
const only = new Set(opt.only.split(','));
const send =
  opt.client === 'fetch'
    ? undefined
    : (await import('../dist/apps/worker/src/poller/keep-alive-send.js')).keepAliveSend();
const work = mkdtempSync(join(tmpdir(), 'tagflow-bench-'));
const sh = (script) =>
  execFileSync('bash', ['-c', `. scripts/lib/services.sh; ${script}`], { cwd: root, encoding: 'utf8' }).trim();
if (process.getuid?.() === 0) execFileSync('chmod', ['755', work]);

const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const log = (...a) => console.error('bench:', ...a);

// ---------------------------------------------------------------- services

const REDIS_MODE = opt.redis;
/** How the API reaches Redis (its environment), and a connection to it for the ceiling. */
const redis = (() => {
  if (REDIS_MODE === 'single') {
    const url = sh(`ensure_redis_binary; start_redis ${work}/redis`);
    return { env: { REDIS_URL: url }, connect: () => new Redis(url, { maxRetriesPerRequest: null }) };
  }
  if (REDIS_MODE === 'sentinel') {
    const [, , sentinels] = sh(`ensure_redis_binary; start_redis_sentinel ${work}/redis`).split(' ');
    const hosts = sentinels.split(',').map((hp) => ({ host: '127.0.0.1', port: Number(hp.split(':')[1]) }));
    return {
      env: { REDIS_SENTINELS: sentinels, REDIS_SENTINEL_NAME: 'tagflow' },
      connect: () => new Redis({ sentinels: hosts, name: 'tagflow', maxRetriesPerRequest: null }),
    };
  }
  if (REDIS_MODE === 'cluster') {
    const nodes = sh(`ensure_redis_binary; start_redis_cluster ${work}/redis`);
    const hosts = nodes.split(',').map((hp) => ({ host: '127.0.0.1', port: Number(hp.split(':')[1]) }));
    return {
      env: { REDIS_CLUSTER_NODES: nodes },
      connect: () => new Cluster(hosts, { redisOptions: { maxRetriesPerRequest: null } }),
    };
  }
  throw new Error(`--redis ${REDIS_MODE}: one of single, sentinel, cluster`);
})();
let pgAdmin = null;
const cleanup = () => {
  try {
    sh(`stop_redis ${work}/redis; stop_redis_nodes ${work}/redis; stop_postgres ${work}/pg`);
  } catch {
    /* best effort */
  }
  rmSync(work, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

async function freshDb(kind) {
  if (kind === 'sqlite') return `sqlite:${work}/bench-${randomUUID().slice(0, 8)}.db`;
  if (!pgAdmin) pgAdmin = sh(`ensure_postgres_binary; start_postgres ${work}/pg`);
  const name = `bench_${randomUUID().slice(0, 8)}`;
  const c = new pg.Client({ connectionString: pgAdmin });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const u = new URL(pgAdmin);
  u.pathname = `/${name}`;
  return u.toString();
}

/** The API runs as it is deployed: with an admin key, which every request of the bench carries. */
const TOKEN = `tfk_${randomBytes(24).toString('base64url')}`;

async function startApi(databaseUrl) {
  const prefix = `b${randomUUID().slice(0, 8)}`;
  const proc = spawn(
    process.execPath,
    [...(process.env.BENCH_API_NODE_ARGS ?? '').split(' ').filter(Boolean), join(root, 'dist/apps/api/main.js')],
    {
      env: {
        PATH: process.env.PATH,
        PORT: '0',
        DATABASE_URL: databaseUrl,
        ...redis.env,
        QUEUE_PREFIX: prefix,
        // PostgreSQL directly, as a deployment without a pooler runs it (no effect on SQLite).
        DATABASE_PREPARED_STATEMENTS: process.env.BENCH_PREPARED_STATEMENTS ?? 'on',
        LOG_LEVEL: 'info',
        BODY_LIMIT_BYTES: String(16 * 1024 * 1024),
        TAGFLOW_ADMIN_TOKEN: TOKEN,
        // Measured here: throughput, not the rate limit (it is still checked on every request).
        RATE_LIMIT_RPS: '1000000',
        RATE_LIMIT_BURST: '1000000',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout.on('data', (c) => {
      buf += c;
      const m = /"msg":"tagflow api listening".*?"port":(\d+)/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`API exited ${code}`)));
  });
  // Keep reading stdout (the API logs at info) so the pipe never fills; BENCH_API_LOG keeps it.
  if (process.env.BENCH_API_LOG) proc.stdout.pipe(createWriteStream(process.env.BENCH_API_LOG, { flags: 'a' }));
  else proc.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    client: new TagflowClient({ url, token: TOKEN, timeoutMs: 120_000, send }),
    proc,
    prefix,
    peakRssMb: () => vmHwmMb(proc.pid),
  };
}

function vmHwmMb(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function stopApi(api) {
  api.proc.kill('SIGTERM');
  await new Promise((r) => api.proc.on('exit', r));
}

/** Adds tasks in batches of 1,000 (the API's limit per request). */
async function createTasks(client, wfId, specs) {
  for (let i = 0; i < specs.length; i += 1000) await client.addTasks(wfId, specs.slice(i, i + 1000));
}

/** Polling clients that complete what they get until `done()`; returns how many they completed. */
async function pollers(client, count, tags, done, { maxTasks = 10, waitS = 1 } = {}) {
  let completed = 0;
  const loop = async () => {
    while (!done(completed)) {
      const tasks = await client.poll({ tags, wait_s: waitS, max_tasks: maxTasks });
      for (const t of tasks) {
        await client.complete(t.id, t.lease.token);
        completed++;
      }
    }
  };
  await Promise.all(Array.from({ length: count }, loop));
  return completed;
}

/** READY -> leased, from the tasks' own timestamps (server clock), in ms. */
async function leaseLatencies(client, wfIds) {
  const out = [];
  for (const id of wfIds) {
    let cursor;
    do {
      const page = await client.listTasks(id, { limit: 500, cursor });
      for (const t of page.items)
        if (t.ready_at && t.started_at) out.push(Date.parse(t.started_at) - Date.parse(t.ready_at));
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }
  return out;
}

/** A value from the API's /metrics (first sample of that name). */
async function metric(api, name) {
  const text = await (await fetch(`${api.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').pop()) : NaN;
}

// ---------------------------------------------------------------- workloads

async function throughput(api) {
  const wfIds = [];
  const perWf = 1000;
  for (let w = 0; w < N / perWf; w++) {
    const wf = await api.client.createWorkflow({ name: `tp-${w}`, sealed: false });
    await createTasks(
      api.client,
      wf.id,
      Array.from({ length: perWf }, (_, i) => ({ name: `t${i}`, tags: ['tp'], action: { type: 'noop' } })),
    );
    await api.client.sealWorkflow(wf.id);
    wfIds.push(wf.id);
  }
  const t0 = performance.now();
  await pollers(api.client, P, ['tp'], (c) => c >= N);
  const secs = (performance.now() - t0) / 1000;
  const lat = await leaseLatencies(api.client, wfIds);
  return {
    tasks: N,
    pollers: P,
    seconds: round(secs, 2),
    tasks_per_s: round(N / secs),
    ready_to_leased_p50_ms: pct(lat, 50),
    ready_to_leased_p99_ms: pct(lat, 99),
  };
}

async function ceiling() {
  const conn = redis.connect();
  const name = `ceiling-${randomUUID().slice(0, 8)}`;
  // In a Cluster, BullMQ's keys of one queue share a hash slot through the prefix's hash tag.
  const prefix = REDIS_MODE === 'cluster' ? '{bench}' : 'bench';
  const queue = new Queue(name, { connection: conn, prefix });
  const worker = new Worker(name, null, { connection: conn, prefix, autorun: false });
  for (let i = 0; i < N; i += 1000) {
    await queue.addBulk(
      Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({
        name: 'j',
        data: { i: i + j },
        opts: { jobId: `j-${i + j}`, removeOnComplete: true },
      })),
    );
  }
  let done = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: P }, async () => {
      for (;;) {
        const token = randomUUID();
        const job = await worker.getNextJob(token, { block: false });
        if (!job) return;
        await job.moveToCompleted(null, token, false);
        done++;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  await worker.close();
  await queue.obliterate({ force: true }).catch(() => undefined);
  await queue.close();
  conn.disconnect();
  return { jobs: done, seconds: round(secs, 2), jobs_per_s: round(done / secs) };
}

/** A root failing under --fanout dependents (on_failure: --fanout-policy, continue or fail): how long its report takes, how long /health waits meanwhile. */
async function fanout(api) {
  const tag = `fan-${randomUUID().slice(0, 8)}`;
  const wf = await api.client.createWorkflow({
    name: 'fanout',
    on_failure: FANOUT_POLICY,
    tasks: [{ name: 'root', tags: [tag], action: { type: 'noop' }, retry: { count: 0 } }],
  });
  await createTasks(
    api.client,
    wf.id,
    Array.from({ length: FANOUT }, (_, i) => ({
      name: `d${i}`,
      tags: ['never-polled'],
      action: { type: 'noop' },
      requires: ['root'],
    })),
  );
  await api.client.sealWorkflow(wf.id);
  const [root] = await api.client.poll({ tags: [tag], wait_s: 10 });
  let healthMs = NaN;
  const probe = (async () => {
    await new Promise((r) => setTimeout(r, 50));
    const started = performance.now();
    await fetch(`${api.url}/health`);
    healthMs = performance.now() - started;
  })();
  const started = performance.now();
  await api.client.fail(root.id, root.lease.token, { message: 'boom', retryable: false });
  const failMs = performance.now() - started;
  await probe;
  // The cascade may go on in later transactions: time until the workflow ends.
  let done = await api.client.getWorkflow(wf.id);
  let endedMs = NaN;
  while (
    (done.state === 'RUNNING' || done.task_counts.WAITING || done.task_counts.READY) &&
    performance.now() - started < 300_000
  ) {
    if (done.state !== 'RUNNING' && Number.isNaN(endedMs)) endedMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, 100));
    done = await api.client.getWorkflow(wf.id);
  }
  const settledMs = performance.now() - started;
  if (Number.isNaN(endedMs)) endedMs = settledMs;
  return {
    dependents: FANOUT,
    on_failure: FANOUT_POLICY,
    fail_ms: round(failMs, 0),
    health_ms: round(healthMs, 0),
    ended_ms: round(endedMs, 0),
    settled_ms: round(settledMs, 0),
    state: done.state,
    skipped: done.task_counts.SKIPPED,
  };
}

/** The next task on `tag`, waiting for it up to 30 s. */
const takeOne = async (api, tag) => (await api.client.poll({ tags: [tag], wait_s: 30 }))[0];

/**
 * A chain of `n` tasks in a new workflow, each requiring the one before; one client runs it,
 * one task at a time, with `hop(t)` (report it, then hold the next task). Returns the hops
 * (ms, from sending a report to holding the next task) and the CPU a hop by process.
 */
async function chain(api, name, n, hop) {
  const wf = await api.client.createWorkflow({ name });
  await createTasks(
    api.client,
    wf.id,
    Array.from({ length: n }, (_, i) => ({
      name: `c${i}`,
      tags: [name],
      action: { type: 'noop' },
      ...(i ? { requires: [`c${i - 1}`] } : {}),
    })),
  );
  const hops = [];
  let t = await takeOne(api, name);
  const budget = cpuBudget(api);
  for (let i = 1; i < n; i++) {
    const sent = performance.now();
    t = await hop(t, name);
    hops.push(performance.now() - sent);
  }
  const cpu = budget(hops.length);
  await api.client.complete(t.id, t.lease.token); // the workflow ends
  return { hops, cpu };
}

/**
 * A chain's hops, measured on an API that has run --warm-up hops of the same kind first (a
 * fresh process runs its first few hundred requests several times slower: code not yet
 * optimised, caches empty); the warm-up's own figures are the `cold_` ones.
 */
async function chainFigures(api, hop) {
  const stats = (hops) => ({ p50: round(pct(hops, 50), 2), p99: round(pct(hops, 99), 2) });
  const cold = WARM_UP > 1 ? await chain(api, 'warm-up', WARM_UP, hop) : null;
  const handedBefore = (await metric(api, 'tagflow_tasks_handed_directly_total')) || 0;
  const { hops, cpu } = await chain(api, 'chain', CHAIN, hop);
  // Hops whose task was leased in its report's own transaction, not taken from the queue.
  const direct = ((await metric(api, 'tagflow_tasks_handed_directly_total')) || 0) - handedBefore;
  return {
    hops: hops.length,
    hop_p50_ms: stats(hops).p50,
    hop_p99_ms: stats(hops).p99,
    direct,
    // Whether a hop waits (round trips) or works: CPU a hop by process, against the hop's p50.
    cpu_ms_per_hop: cpu,
    ...(cold
      ? { cold_hops: cold.hops.length, cold_hop_p50_ms: stats(cold.hops).p50, cold_hop_p99_ms: stats(cold.hops).p99 }
      : {}),
  };
}

/** The chain with the single routes: complete, then poll. */
async function handoff(api) {
  return chainFigures(api, async (t, tag) => {
    await api.client.complete(t.id, t.lease.token);
    return takeOne(api, tag);
  });
}

async function scale(api) {
  const per = SCALE / GROUPS;
  const wf = await api.client.createWorkflow({ name: 'scale' });
  const t0 = performance.now();
  for (let g = 0; g < GROUPS; g++) {
    await createTasks(
      api.client,
      wf.id,
      Array.from({ length: per }, (_, i) => ({
        name: `g${g}-${i}`,
        tags: ['scale', `g${g}`],
        action: { type: 'noop' },
        ...(g ? { requires_tags: [`g${g - 1}`] } : {}),
      })),
    );
  }
  await api.client.sealWorkflow(wf.id);
  const acceptS = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  if (opt['accept-only'])
    return { tasks: SCALE, groups: GROUPS, accept_s: round(acceptS, 2), peak_api_rss_mb: api.peakRssMb() };
  // A poll's tags are capabilities: these pollers (an admin key) run every task, whatever its group tag.
  await pollers(api.client, P, ['*'], (c) => c >= SCALE);
  const finishS = (performance.now() - t1) / 1000;
  const { state } = await api.client.getWorkflow(wf.id);
  return {
    tasks: SCALE,
    groups: GROUPS,
    accept_s: round(acceptS, 2),
    finish_s: round(finishS, 2),
    state,
    peak_api_rss_mb: api.peakRssMb(),
  };
}

/**
 * One parked long-poll per tag, 1,000 tags. Burst: one task per tag in a single request,
 * so every poll wakes at once (READY is stamped when the request's transaction starts, so
 * this includes accepting the batch). One at a time: each poll re-parks after completing
 * what it got, and tasks are added one request after another, round-robin over the tags
 * (every task finds its poll parked): the latency of a hand-out while 1,000 polls wait.
 */
async function manyTags(api) {
  const tags = Array.from({ length: TAGS }, (_, i) => `host-${i}`);
  const wf = await api.client.createWorkflow({ name: 'tags' });
  const parked = async (n) => {
    const deadline = Date.now() + 30_000;
    while ((await metric(api, 'tagflow_polls_waiting')) < n) {
      if (Date.now() > deadline) throw new Error(`not every long-poll parked within 30 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const latency = (t) => Date.parse(t.started_at) - Date.parse(t.ready_at);

  const polls = tags.map((tag) => api.client.poll({ tags: [tag], wait_s: 60 }));
  await parked(TAGS);
  await createTasks(
    api.client,
    wf.id,
    tags.map((tag, i) => ({ name: `b${i}`, tags: [tag], action: { type: 'noop' } })),
  );
  const burst = (await Promise.all(polls)).flat();
  await Promise.all(burst.map((t) => api.client.complete(t.id, t.lease.token)));

  const steady = [];
  let last = false;
  const loops = tags.map(async (tag) => {
    for (;;) {
      const got = await api.client.poll({ tags: [tag], wait_s: 60 });
      if (last) return;
      for (const t of got) {
        steady.push(latency(t));
        await api.client.complete(t.id, t.lease.token);
      }
    }
  });
  await parked(TAGS);
  for (let i = 0; i < TAGS; i++)
    await api.client.addTasks(wf.id, [{ name: `s${i}`, tags: [tags[i]], action: { type: 'noop' } }]);
  const deadline = Date.now() + 60_000;
  while (steady.length < TAGS) {
    if (Date.now() > deadline)
      throw new Error(`only ${steady.length} of ${TAGS} one-at-a-time tasks leased within 60 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  // Release the parked polls: one more task each, left unfinished.
  last = true;
  await createTasks(
    api.client,
    wf.id,
    tags.map((tag, i) => ({ name: `z${i}`, tags: [tag], action: { type: 'noop' } })),
  );
  await Promise.all(loops);
  const b = burst.map(latency);
  return {
    tags: TAGS,
    long_polls: TAGS,
    leased: burst.length,
    ready_to_leased_p50_ms: pct(b, 50),
    ready_to_leased_p99_ms: pct(b, 99),
    one_at_a_time_p50_ms: pct(steady, 50),
    one_at_a_time_p99_ms: pct(steady, 99),
  };
}

/** CPU time (user + system, ms) a process has used so far; 0 once it is gone. */
function cpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  } catch {
    return 0;
  }
}
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** PostgreSQL's server processes: the postmaster of the bench's cluster and its children. */
function postgresPids() {
  let master;
  try {
    master = Number(readFileSync(join(work, 'pg/data/postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return [];
  }
  const pids = [master];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1]) === master) pids.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** CPU per process kind over a workload: `take()` before, `per(n)` after gives ms per task. */
function cpuBudget(api, extra = () => ({})) {
  // Every Redis process of the run (one server; or the nodes and sentinels).
  const redisPids = readdirSync(join(work, 'redis'))
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(join(work, 'redis', f), 'utf8')));
  const read = () => ({
    api: cpuMs(api.proc.pid),
    redis: redisPids.reduce((n, p) => n + cpuMs(p), 0),
    postgres: postgresPids().reduce((n, p) => n + cpuMs(p), 0),
    clients: process.cpuUsage().user / 1000 + process.cpuUsage().system / 1000,
    ...extra(),
  });
  const before = read();
  return (tasks) => {
    const after = read();
    return Object.fromEntries(
      Object.keys(after)
        .map((k) => [k, round((after[k] - (before[k] ?? 0)) / tasks, 3)])
        .filter(([, v]) => v > 0),
    );
  };
}

/** Independent noop tasks in workflows of 1,000, sealed; returns their workflow ids. */
async function backlog(api, tag, n, perWorkflow = 1000) {
  const wfIds = [];
  for (let w = 0; w < n / perWorkflow; w++) {
    const wf = await api.client.createWorkflow({ name: `${tag}-${w}`, sealed: false });
    await createTasks(
      api.client,
      wf.id,
      Array.from({ length: Math.min(perWorkflow, n - w * perWorkflow) }, (_, i) => ({
        name: `t${i}`,
        tags: [tag],
        action: { type: 'noop' },
      })),
    );
    await api.client.sealWorkflow(wf.id);
    wfIds.push(wf.id);
  }
  return wfIds;
}

/**
 * The second edition's probe: --pollers clients, each taking up to 8 tasks a request and
 * reporting all of them with its next poll in one call (POST /v1/tasks/report).
 */
async function probe(api) {
  const wfIds = await backlog(api, 'probe', N);
  let completed = 0;
  const budget = cpuBudget(api);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: P }, async () => {
      let tasks = await api.client.poll({ tags: ['probe'], wait_s: 1, max_tasks: 8 });
      while (tasks.length > 0 || completed < N) {
        const reports = tasks.map((t) => ({ task_id: t.id, lease_token: t.lease.token, status: 'complete' }));
        completed += reports.length;
        if (completed >= N) {
          if (reports.length) await api.client.report(reports);
          return;
        }
        tasks = (await api.client.report(reports, { tags: ['probe'], wait_s: 1, max_tasks: 8 })).tasks;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const cpu = budget(N);
  const lat = await leaseLatencies(api.client, wfIds);
  return {
    tasks: N,
    clients: P,
    seconds: round(secs, 2),
    tasks_per_s: round(N / secs),
    ready_to_leased_p50_ms: pct(lat, 50),
    ready_to_leased_p99_ms: pct(lat, 99),
    cpu_ms_per_task: cpu,
  };
}

/** The chain with report-and-poll: each report sent with the next poll in one call. */
async function handoffBatch(api) {
  return chainFigures(api, async (t, tag) => {
    const report = [{ task_id: t.id, lease_token: t.lease.token, status: 'complete' }];
    return (await api.client.report(report, { tags: [tag], wait_s: 30 })).tasks[0];
  });
}

/**
 * The cost of one request through the HTTP stack, the key's check and validation: --requests
 * polls that find nothing (`wait_s: 0`) over 8 keep-alive connections (plain node:http, so the
 * bench's own share stays small): requests/s and the API's CPU per request.
 */
async function route(api) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const body = JSON.stringify({ tags: ['route-none'], wait_s: 0 });
  const url = new URL('/v1/tasks/poll', api.url);
  const headers = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    authorization: `Bearer ${TOKEN}`,
  };
  const one = () =>
    new Promise((resolve, reject) => {
      const req = http.request(url, { method: 'POST', agent, headers }, (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`poll answered ${res.statusCode}`)),
        );
      });
      req.on('error', reject);
      req.end(body);
    });
  for (let i = 0; i < 500; i++) await one(); // warm-up
  let left = REQUESTS;
  const cpu0 = cpuMs(api.proc.pid);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (left-- > 0) await one();
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  agent.destroy();
  return {
    requests: REQUESTS,
    requests_per_s: round(REQUESTS / secs),
    api_cpu_ms_per_request: round((cpuMs(api.proc.pid) - cpu0) / REQUESTS, 3),
  };
}

/**
 * The bundled worker as deployed: 4 processes with --concurrency 16 run --tasks noop tasks,
 * in workflows of 1,000 (`workers`) or all in one workflow (`workers-one`).
 */
async function realWorkers(api, perWorkflow = 1000) {
  const wfIds = await backlog(api, 'wk', N, perWorkflow);
  const tokenFile = join(work, 'worker-token');
  writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
  const t0 = performance.now();
  const procs = Array.from({ length: 4 }, (_, i) =>
    spawn(
      process.execPath,
      [
        ...(process.env.BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean),
        join(root, 'dist/apps/worker/main.js'),
        '--api',
        api.url,
        '--tags',
        'wk',
        '--name',
        `bench-${i}`,
        '--concurrency',
        '16',
        '--work-dir',
        mkdtempSync(join(work, 'worker-')),
        '--token-file',
        tokenFile,
        '--log-level',
        'warn',
      ],
      { env: { PATH: process.env.PATH }, stdio: ['ignore', 'ignore', 'inherit'] },
    ),
  );
  const budget = cpuBudget(api, () => ({ workers: procs.reduce((n, p) => n + cpuMs(p.pid), 0) }));
  let cpu;
  try {
    // One workflow asked about at a time, the first not yet seen finished (asking for every
    // workflow every 100 ms was 100 requests a second, each counting a workflow's tasks:
    // load on the API and the database being measured).
    const pending = [...wfIds];
    while (pending.length > 0) {
      if (procs.some((p) => p.exitCode !== null))
        throw new Error('a worker process exited early (see its output above)');
      const { state } = await api.client.getWorkflow(pending[0]);
      if (state === 'SUCCESS') {
        pending.shift();
        continue;
      }
      if (state !== 'RUNNING') throw new Error(`workflow ${pending[0]} ended ${state}`);
      if (performance.now() - t0 > 600_000) throw new Error('the workers did not finish in 10 min');
      await new Promise((r) => setTimeout(r, 100));
    }
    cpu = budget(N);
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r() : p.on('exit', r)))));
  }
  const secs = (performance.now() - t0) / 1000;
  const lat = await leaseLatencies(api.client, wfIds);
  return {
    tasks: N,
    workers: 4,
    concurrency: 16,
    seconds: round(secs, 2),
    tasks_per_s: round(N / secs),
    ready_to_leased_p50_ms: pct(lat, 50),
    ready_to_leased_p99_ms: pct(lat, 99),
    cpu_ms_per_task: cpu,
  };
}

/** 1,000 long-polls parked on one tag, then 1,000 tasks in one request: READY -> leased, and until the last poll answered. */
async function burst(api) {
  // A first round warms the fresh API up (the code that accepts a batch and answers the polls
  // runs several times slower on its first uses); its figures are the `cold_` ones.
  const cold = WARM_UP > 0 ? await burstRound(api, 'burst-warm-up') : null;
  const warm = await burstRound(api, 'burst');
  return {
    ...warm,
    ...(cold ? { cold_accept_ms: cold.accept_ms, cold_last_answer_ms: cold.last_answer_ms } : {}),
  };
}

/** 1,000 polls parked on `tag`, then 1,000 tasks on it in one request. */
async function burstRound(api, tag) {
  const polls = 1000;
  const answered = [];
  const t = Array.from({ length: polls }, () =>
    api.client
      .poll({ tags: [tag], wait_s: 60, max_tasks: 1 })
      .then((tasks) => answered.push(performance.now()) && tasks),
  );
  while ((await metric(api, 'tagflow_polls_waiting')) < polls) await new Promise((r) => setTimeout(r, 50));
  const wf = await api.client.createWorkflow({ name: tag });
  const sent = performance.now();
  await createTasks(
    api.client,
    wf.id,
    Array.from({ length: polls }, (_, i) => ({ name: `b${i}`, tags: [tag], action: { type: 'noop' } })),
  );
  const accepted = performance.now() - sent;
  const got = (await Promise.all(t)).flat();
  const lastMs = Math.max(...answered) - sent;
  const firstMs = Math.min(...answered) - sent;
  const lat = await leaseLatencies(api.client, [wf.id]);
  const reports = got.map((x) => ({ task_id: x.id, lease_token: x.lease.token, status: 'complete' }));
  for (let i = 0; i < reports.length; i += 100) await api.client.report(reports.slice(i, i + 100));
  return {
    polls,
    leased: got.length,
    accept_ms: round(accepted, 0),
    first_answer_ms: round(firstMs, 0),
    last_answer_ms: round(lastMs, 0),
    ready_to_leased_p50_ms: pct(lat, 50),
    ready_to_leased_p99_ms: pct(lat, 99),
  };
}

// ---------------------------------------------------------------- run

const results = {
  at: new Date().toISOString(),
  node: process.version,
  redis: REDIS_MODE,
  client: opt.client,
  sizes: { tasks: N, pollers: P, chain: CHAIN, scale: SCALE, groups: GROUPS, tags: TAGS, fanout: FANOUT },
  runs: {},
};
let ceil = null;
if (only.has('ceiling')) {
  log(`raw BullMQ ceiling: ${N} jobs, ${P} concurrent`);
  ceil = results.ceiling = await ceiling();
}
for (const db of opt.db.split(',')) {
  const r = (results.runs[db] = {});
  const run = async (name, fn) => {
    if (!only.has(name)) return;
    const api = await startApi(await freshDb(db));
    try {
      log(`${db}: ${name}`);
      r[name] = await fn(api);
    } catch (e) {
      r[name] = { error: e.message };
    } finally {
      await stopApi(api);
    }
  };
  await run('throughput', throughput);
  if (r.throughput?.tasks_per_s && ceil)
    r.throughput.ratio_to_bullmq = round(r.throughput.tasks_per_s / ceil.jobs_per_s, 3);
  await run('probe', probe);
  await run('workers', realWorkers);
  await run('workers-one', (api) => realWorkers(api, N));
  for (const k of ['probe', 'workers', 'workers-one'])
    if (r[k]?.tasks_per_s && ceil) r[k].ratio_to_bullmq = round(r[k].tasks_per_s / ceil.jobs_per_s, 3);
  await run('handoff', handoff);
  await run('handoff-batch', handoffBatch);
  await run('burst', burst);
  await run('scale', scale);
  await run('tags', manyTags);
  await run('fanout', fanout);
  await run('route', route);
}

mkdirSync(join(root, 'bench/results'), { recursive: true });
const file = join(root, 'bench/results', `${results.at.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify(results, null, 2));

const rows = [];
if (ceil) rows.push(['raw BullMQ', 'ceiling', `${ceil.jobs_per_s} jobs/s (${ceil.jobs} jobs, ${P} concurrent)`]);
for (const [db, r] of Object.entries(results.runs)) {
  const f = (o, text) => (o?.error ? `error: ${o.error}` : o ? text(o) : 'skipped');
  const cold = (o) =>
    o.cold_hops
      ? `; cold (a fresh API's first ${o.cold_hops}): p50 ${o.cold_hop_p50_ms}, p99 ${o.cold_hop_p99_ms} ms`
      : '';
  rows.push([
    db,
    'throughput',
    f(
      r.throughput,
      (o) =>
        `${o.tasks_per_s} tasks/s (${o.tasks} tasks, ${o.pollers} pollers), ${o.ratio_to_bullmq ?? '?'} of BullMQ; READY->leased p50 ${o.ready_to_leased_p50_ms} ms p99 ${o.ready_to_leased_p99_ms} ms`,
    ),
  ]);
  rows.push([
    db,
    'probe',
    f(
      r.probe,
      (o) =>
        `${o.tasks_per_s} tasks/s (${o.tasks} tasks, ${o.clients} clients, report-and-poll, 8 a request), ${o.ratio_to_bullmq ?? '?'} of BullMQ; READY->leased p50 ${o.ready_to_leased_p50_ms} ms p99 ${o.ready_to_leased_p99_ms} ms`,
    ),
  ]);
  rows.push([
    db,
    'workers',
    f(
      r.workers,
      (o) =>
        `${o.tasks_per_s} tasks/s (${o.tasks} noop tasks, ${o.workers} worker processes x ${o.concurrency}), ${o.ratio_to_bullmq ?? '?'} of BullMQ; READY->leased p50 ${o.ready_to_leased_p50_ms} ms p99 ${o.ready_to_leased_p99_ms} ms`,
    ),
  ]);
  rows.push([
    db,
    'workers, one workflow',
    f(
      r['workers-one'],
      (o) =>
        `${o.tasks_per_s} tasks/s (${o.tasks} noop tasks in one workflow, ${o.workers} worker processes x ${o.concurrency}), ${o.ratio_to_bullmq ?? '?'} of BullMQ; READY->leased p50 ${o.ready_to_leased_p50_ms} ms p99 ${o.ready_to_leased_p99_ms} ms`,
    ),
  ]);
  for (const k of ['probe', 'workers', 'workers-one'])
    if (r[k]?.cpu_ms_per_task)
      rows.push([
        db,
        `  CPU/task (${k})`,
        Object.entries(r[k].cpu_ms_per_task)
          .map(([p, ms]) => `${p} ${ms} ms`)
          .join(', '),
      ]);
  rows.push([
    db,
    'hand-off (report+poll)',
    f(
      r['handoff-batch'],
      (o) =>
        `p50 ${o.hop_p50_ms} ms, p99 ${o.hop_p99_ms} ms per hop (${o.hops} hops, ${o.direct} handed directly)${cold(o)}`,
    ),
  ]);
  if (r['handoff-batch']?.cpu_ms_per_hop)
    rows.push([
      db,
      '  CPU/hop',
      Object.entries(r['handoff-batch'].cpu_ms_per_hop)
        .map(([p, ms]) => `${p} ${ms} ms`)
        .join(', '),
    ]);
  rows.push([
    db,
    'route (empty polls)',
    f(
      r.route,
      (o) => `${o.requests_per_s} requests/s, API CPU ${o.api_cpu_ms_per_request} ms a request (${o.requests})`,
    ),
  ]);
  rows.push([
    db,
    'burst',
    f(
      r.burst,
      (o) =>
        `${o.polls} parked polls, ${o.leased} tasks in one request (accepted in ${o.accept_ms} ms): READY->leased p50 ${o.ready_to_leased_p50_ms} ms p99 ${o.ready_to_leased_p99_ms} ms, polls answered from ${o.first_answer_ms} to ${o.last_answer_ms} ms after sending${o.cold_last_answer_ms ? `; cold (a fresh API's first burst): accepted in ${o.cold_accept_ms} ms, last poll ${o.cold_last_answer_ms} ms` : ''}`,
    ),
  ]);
  rows.push([
    db,
    'hand-off',
    f(
      r.handoff,
      (o) =>
        `p50 ${o.hop_p50_ms} ms, p99 ${o.hop_p99_ms} ms per hop (${o.hops} hops, ${o.direct} handed directly)${cold(o)}`,
    ),
  ]);
  rows.push([
    db,
    'scale',
    f(
      r.scale,
      (o) =>
        `${o.tasks} tasks in ${o.groups} groups: accepted in ${o.accept_s} s, ${o.finish_s === undefined ? 'not run' : `finished in ${o.finish_s} s (${o.state})`}, peak API RSS ${o.peak_api_rss_mb} MB`,
    ),
  ]);
  rows.push([
    db,
    'fan-out',
    f(
      r.fanout,
      (o) =>
        `a root failing under ${o.dependents} dependents (on_failure ${o.on_failure}): reported in ${o.fail_ms} ms, /health meanwhile ${o.health_ms} ms; workflow ${o.state} after ${o.ended_ms} ms, ${o.skipped} skipped after ${o.settled_ms} ms`,
    ),
  ]);
  rows.push([
    db,
    'many tags',
    f(
      r.tags,
      (o) =>
        `${o.long_polls} long-polls on ${o.tags} tags, READY->leased: one batch of ${o.leased} p50 ${o.ready_to_leased_p50_ms} ms, p99 ${o.ready_to_leased_p99_ms} ms; one at a time p50 ${o.one_at_a_time_p50_ms} ms, p99 ${o.one_at_a_time_p99_ms} ms`,
    ),
  ]);
}
const w0 = Math.max(...rows.map((r) => r[0].length)),
  w1 = Math.max(...rows.map((r) => r[1].length));
console.log(rows.map((r) => `${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2]}`).join('\n'));
console.log(`\nredis: ${REDIS_MODE}; results: ${file}`);
process.exit(0);
