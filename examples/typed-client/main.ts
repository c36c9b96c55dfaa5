/**
 * A client generated from docs/openapi.json, in another program's shoes: it creates a
 * workflow, polls its task as a worker would, reports it, and reads the task's output. Its
 * types come from the document alone (`npm run typecheck` generates openapi.d.ts with
 * openapi-typescript and checks this file under --strict, with no casts).
 *
 *   TAGFLOW_API_URL=http://127.0.0.1:8080 TAGFLOW_TOKEN=tfk_... node dist/examples/typed-client/main.js
 */
import createClient from 'openapi-fetch';
import type { paths } from './openapi.js';

const token = process.env.TAGFLOW_TOKEN;
const api = createClient<paths>({
  baseUrl: process.env.TAGFLOW_API_URL ?? 'http://127.0.0.1:8080',
  headers: token ? { authorization: `Bearer ${token}` } : {},
});

/** The error body's message, or the data. */
function ok<T>(answer: { data?: T; error?: { code: string; message: string } }, what: string): T {
  if (answer.data === undefined)
    throw new Error(`${what}: ${answer.error?.code ?? '?'} ${answer.error?.message ?? ''}`);
  return answer.data;
}

const tag = `typed-${Date.now()}`;
const workflow = ok(
  await api.POST('/v1/workflows', {
    body: { name: 'typed-client', tasks: [{ name: 'greet', tags: [tag], action: { type: 'noop' } }] },
  }),
  'create the workflow',
);
console.log(`workflow ${workflow.id}: ${workflow.state}, ${workflow.task_counts.READY} ready`);

const polled = ok(await api.POST('/v1/tasks/poll', { body: { tags: [tag], wait_s: 10 } }), 'poll');
const task = polled.tasks[0];
if (!task) throw new Error('no task within 10 s');
console.log(`leased ${task.name} (attempt ${task.attempt}) until ${task.lease.expires_at}`);

const reported = ok(
  await api.POST('/v1/tasks/report', {
    body: {
      reports: [{ task_id: task.id, lease_token: task.lease.token, status: 'complete', output: { greeting: 'hello' } }],
    },
  }),
  'report',
);
const result = reported.results[0];
if (result?.status !== 200) throw new Error(`report refused: ${result?.status ?? '?'} ${result?.message ?? ''}`);

const done = ok(
  await api.GET('/v1/tasks/{id}', { params: { path: { id: task.id }, query: { wait_s: 5 } } }),
  'read the task',
);
console.log(`task ${done.name}: ${done.state}, output greeting: ${String(done.output?.greeting)}`);
