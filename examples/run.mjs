#!/usr/bin/env node
// Runs an example workflow file (examples/NAME.yaml) against a Tagflow API with
// `tagflow apply --wait`, with one local worker per simulated server (each with that
// server's tags), and prints what ran where.
//
//   npm start                          # in one terminal
//   node examples/run.mjs clustered-app
//   node examples/run.mjs sql-cluster
//   node examples/run.mjs rolling-restart
//
// TAGFLOW_API_URL (default http://127.0.0.1:8080) and TAGFLOW_TOKEN are honoured.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { TagflowClient } = await import(join(root, 'dist/libs/client/src/index.js'));

// The servers each example's workflow expects, by name, with their tags (a worker's tags are what it can do).
const SERVERS = {
  'clustered-app': {
    manager: ['host:manager'],
    node1: ['host:node1', 'cluster-node'],
    node2: ['host:node2', 'cluster-node'],
    node3: ['host:node3', 'cluster-node'],
  },
  'sql-cluster': {
    db1: ['host:db1', 'prepare', 'setup'],
    db2: ['host:db2', 'prepare', 'setup'],
    db3: ['host:db3', 'prepare', 'setup'],
  },
  'rolling-restart': Object.fromEntries([1, 2, 3, 4, 5, 6].map((n) => [`web${n}`, ['web', `host:web${n}`]])),
};

/**
 * The most tasks RUNNING at once in a workflow, replayed from its recorded transitions.
 * Exact on SQLite (`npm start`); on PostgreSQL the history is in transaction order, which can
 * overstate it by one where a lease and a report overlapped (docs/api.md, events).
 */
async function mostRunning(client, id) {
  let running = 0;
  let most = 0;
  let after;
  do {
    const page = await client.workflowEvents(id, { after, limit: 1000 });
    for (const e of page.items) {
      if (!e.task_id) continue;
      if (e.to === 'RUNNING') running++;
      if (e.from === 'RUNNING') running--;
      most = Math.max(most, running);
    }
    after = page.next ?? undefined;
  } while (after);
  return most;
}

const name = process.argv[2];
if (!SERVERS[name]) {
  console.error(`usage: node examples/run.mjs <${Object.keys(SERVERS).join('|')}>`);
  process.exit(2);
}
const api = process.env.TAGFLOW_API_URL ?? 'http://127.0.0.1:8080';
const client = new TagflowClient({ url: api, token: process.env.TAGFLOW_TOKEN });
await client.health().catch((e) => {
  console.error(`cannot reach Tagflow at ${api} (${e.message}); start it with npm start`);
  process.exit(2);
});

const scratch = mkdtempSync(join(tmpdir(), 'tagflow-example-'));
// The workers get the key on their standard input: a worker reads none from its environment.
const { TAGFLOW_TOKEN: token, ...workerEnv } = process.env;
const workers = Object.entries(SERVERS[name]).map(([server, tags]) => {
  const w = spawn(
    process.execPath,
    [
      join(root, 'dist/apps/worker/main.js'),
      '--api',
      api,
      '--name',
      server,
      '--tags',
      tags.join(','),
      '--concurrency',
      '4',
      '--work-dir',
      join(scratch, server),
      '--log-level',
      'warn',
      ...(token ? ['--token-stdin'] : []),
    ],
    { stdio: [token ? 'pipe' : 'ignore', 'ignore', 'inherit'], env: workerEnv },
  );
  if (token) w.stdin.end(`${token}\n`);
  return w;
});
const stopWorkers = () =>
  Promise.all(
    workers.map((w) => new Promise((r) => (w.exitCode !== null ? r() : (w.on('exit', r), w.kill('SIGTERM'))))),
  );

let code = 1;
try {
  // The workflow file applied as a user would: `tagflow apply -f examples/NAME.yaml --wait`.
  const applied = await new Promise((resolve) => {
    const cli = spawn(
      process.execPath,
      [
        join(root, 'bin/tagflow.js'),
        'apply',
        '-f',
        join(root, 'examples', `${name}.yaml`),
        '--wait',
        '--timeout',
        '300',
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          TAGFLOW_URL: api,
          ...(token ? { TAGFLOW_TOKEN: token } : {}),
        },
      },
    );
    let out = '';
    cli.stdout.on('data', (c) => {
      out += c;
      process.stdout.write(c);
    });
    cli.on('exit', (status) => resolve({ status, out }));
  });
  const id = /workflow (\S+) created/.exec(applied.out)?.[1];
  if (!id) throw new Error(`tagflow apply exited ${applied.status} without creating the workflow`);
  const done = await client.getWorkflow(id);
  const names = new Map((await client.listWorkers({ limit: 500 })).items.map((w) => [w.id, w.name]));
  for (const t of (await client.listTasks(id, { limit: 500 })).items) {
    const where = t.worker_id ? (names.get(t.worker_id) ?? t.worker_id) : '-';
    console.log(
      `  ${t.name.padEnd(16)} ${t.state.padEnd(8)} on ${String(where).padEnd(8)} ${JSON.stringify(t.output ?? t.error)}`,
    );
  }
  const keys = (await client.listData(id)).items.filter((k) => !k.key.startsWith('tasks.')).map((k) => k.key);
  console.log(`data keys: ${keys.join(', ')}`);
  console.log(`most tasks running at once: ${await mostRunning(client, id)}`);
  console.log(`workflow ${done.state}`);
  code = done.state === 'SUCCESS' ? 0 : 1;
} finally {
  await stopWorkers();
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(code);
