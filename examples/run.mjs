#!/usr/bin/env node
// Runs an example workflow against a Tagflow API, with one local worker per simulated
// server (each with that server's tags), and prints what ran where.
//
//   npm start                          # in one terminal
//   node examples/run.mjs clustered-app
//   node examples/run.mjs sql-cluster
//
// TAGFLOW_API_URL (default http://127.0.0.1:8080) and TAGFLOW_TOKEN are honoured.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { TagflowClient } = await import(join(root, 'dist/libs/client/src/index.js'));

const name = process.argv[2];
if (!name) {
  console.error('usage: node examples/run.mjs <clustered-app|sql-cluster>');
  process.exit(2);
}
const api = process.env.TAGFLOW_API_URL ?? 'http://127.0.0.1:8080';
const example = (await import(join(root, 'examples', name, 'workflow.mjs'))).default;
const client = new TagflowClient({ url: api, token: process.env.TAGFLOW_TOKEN });
await client.health().catch((e) => {
  console.error(`cannot reach Tagflow at ${api} (${e.message}); start it with npm start`);
  process.exit(2);
});

const scratch = mkdtempSync(join(tmpdir(), 'tagflow-example-'));
// The workers get the key on their standard input: a worker reads none from its environment.
const { TAGFLOW_TOKEN: token, ...workerEnv } = process.env;
const workers = Object.entries(example.servers).map(([server, tags]) => {
  const w = spawn(process.execPath, [join(root, 'dist/apps/worker/main.js'), '--api', api, '--name', server, '--tags', tags.join(','),
    '--concurrency', '4', '--work-dir', join(scratch, server), '--log-level', 'warn', ...(token ? ['--token-stdin'] : [])],
  { stdio: [token ? 'pipe' : 'ignore', 'ignore', 'inherit'], env: workerEnv });
  if (token) w.stdin.end(`${token}\n`);
  return w;
});
const stopWorkers = () => Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r() : (w.on('exit', r), w.kill('SIGTERM'))))));

let code = 1;
try {
  const wf = await client.createWorkflow(example.workflow);
  console.log(`workflow ${wf.name} ${wf.id}`);
  // Long-poll whichever task is still open until the workflow has finished.
  const deadline = Date.now() + 300_000;
  const finished = (s) => ['SUCCESS', 'ERROR', 'CANCELLED', 'SKIPPED'].includes(s);
  let done = await client.getWorkflow(wf.id);
  while (!finished(done.state)) {
    if (Date.now() > deadline) throw new Error('the workflow did not finish within 5 minutes');
    const open = (await client.listTasks(wf.id, { limit: 500 })).items.find((t) => !finished(t.state));
    if (open) await client.getTask(open.id, 30);
    done = await client.getWorkflow(wf.id);
    if (!open && !finished(done.state)) throw new Error(`workflow is ${done.state} with no task left to run`);
  }
  const names = new Map((await client.listWorkers({ limit: 500 })).items.map((w) => [w.id, w.name]));
  for (const t of (await client.listTasks(wf.id, { limit: 500 })).items) {
    const where = t.worker_id ? names.get(t.worker_id) ?? t.worker_id : '-';
    console.log(`  ${t.name.padEnd(16)} ${t.state.padEnd(8)} on ${String(where).padEnd(8)} ${JSON.stringify(t.output ?? t.error)}`);
  }
  const keys = (await client.listData(wf.id)).items.filter((k) => !k.key.startsWith('tasks.')).map((k) => k.key);
  console.log(`data keys: ${keys.join(', ')}`);
  console.log(`workflow ${done.state}`);
  code = done.state === 'SUCCESS' ? 0 : 1;
} finally {
  await stopWorkers();
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(code);
