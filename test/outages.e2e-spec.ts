import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Api, task, waitFor, waitForTask, workflow } from './support/harness.js';
import { OwnRedis } from './support/own-redis.js';

const timed = async <T>(work: Promise<T>): Promise<{ value: T; ms: number }> => {
  const started = Date.now();
  const value = await work;
  return { value, ms: Date.now() - started };
};

/** Redis away or frozen: answers within seconds (503 where Redis is needed), nothing accepted is lost. */
describe('outages', () => {
  let redis: OwnRedis;
  let api: Api;
  beforeAll(async () => {
    redis = await OwnRedis.start();
    api = await Api.start({ env: { REDIS_URL: redis.url } });
  });
  afterAll(async () => {
    redis?.thaw();
    await api?.stop();
    await redis?.remove();
  });

  it('Redis stopped: tasks are still accepted at once, polls answer 503 with Retry-After, health names Redis; all runs once it is back', async () => {
    const t = `down-${Date.now()}`;
    await redis.down();
    await waitFor('the API to notice', async () => (await api.get('/health')).status === 503);
    expect((await api.get('/health')).body).toMatchObject({ status: 'unavailable', database: 'ok' });

    const created = await timed(
      api.post('/v1/workflows', workflow({ sealed: true, tasks: [task('during', { tags: [t] })] })),
    );
    expect(created.value.status).toBe(201);
    expect(created.ms).toBeLessThan(5000);
    const poll = await timed(
      fetch(`${api.url}/v1/tasks/poll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tags: [t], wait_s: 10 }),
      }),
    );
    expect(poll.value.status).toBe(503);
    expect(poll.value.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(poll.ms).toBeLessThan(5000);
    console.log(`Redis stopped: POST /v1/workflows answered 201 in ${created.ms} ms, a poll 503 in ${poll.ms} ms`);

    await redis.up();
    await waitFor('the API to reconnect', async () => (await api.get('/health')).status === 200, 15_000);
    // Redis came back empty of this task's job: the reconciler queues it again.
    const got = await api.take([t], 20);
    expect(got.name).toBe('during');
    expect(
      (await api.post(`/v1/tasks/${got.id}/complete`, { lease_token: got.lease.token, output: { ok: true } })).status,
    ).toBe(200);
    expect(await waitForTask(api, created.value.body.id, 'during', ['SUCCESS'])).toMatchObject({
      attempt: 1,
      output: { ok: true },
    });
  });

  it('Redis frozen (up, not answering): a request the database accepted is answered within seconds, a poll that needs Redis gets 503, nothing is lost', async () => {
    const t = `frozen-${Date.now()}`;
    await waitFor('Redis to be up', async () => (await api.get('/health')).status === 200, 15_000);
    // A task queued before: a poll for its tags has to ask Redis.
    const before = await api.post(
      '/v1/workflows',
      workflow({ sealed: true, tasks: [task('before-freeze', { tags: [t] })] }),
    );
    await waitForTask(api, before.body.id, 'before-freeze', ['READY']);
    redis.freeze();
    try {
      const created = await timed(
        api.post('/v1/workflows', workflow({ sealed: true, tasks: [task('while-frozen', { tags: [t] })] })),
      );
      expect(created.value.status).toBe(201);
      expect(created.ms).toBeLessThan(5000);
      const poll = await timed(api.post('/v1/tasks/poll', { tags: [t], wait_s: 1 }));
      expect(poll.value.status).toBe(503);
      expect(poll.ms).toBeLessThan(6000);
      console.log(`Redis frozen: POST /v1/workflows answered 201 in ${created.ms} ms, a poll 503 in ${poll.ms} ms`);
    } finally {
      redis.thaw();
    }
    await waitFor('Redis to answer again', async () => (await api.get('/health')).status === 200, 15_000);
    const names: string[] = [];
    await waitFor(
      'both tasks to be handed out',
      async () => {
        for (const x of await api.poll([t], { wait_s: 2, max_tasks: 2 })) names.push(x.name);
        return names.length >= 2;
      },
      30_000,
    );
    expect(names.sort()).toEqual(['before-freeze', 'while-frozen']);
  });

  it("starts with an unreadable tag set entry in Redis, says so in /metrics, and runs that tag set's tasks", async () => {
    const prefix = `bad${Date.now()}`;
    const raw = new Redis(redis.url);
    try {
      await raw.hset(`${prefix}:tagsets`, 'deadbeefdeadbeefdeadbeef', '{not json', 'cafecafecafecafecafecafe', '[1,2]');
    } finally {
      raw.disconnect();
    }
    const other = await Api.start({ prefix, env: { REDIS_URL: redis.url } });
    try {
      expect(await other.metric('tagflow_errors_ignored_total')).toBe(2);
      const t = `after-bad-${Date.now()}`;
      const wf = await other.createWorkflow(workflow({ sealed: true, tasks: [task('runs', { tags: [t] })] }));
      const got = await other.take([t], 10);
      expect(got.workflow_id).toBe(wf.id);
    } finally {
      await other.stop();
    }
  });

  it('forgets the queues of 10,000 one-off tag sets once their workflow is deleted (process memory and Redis), and brings one back with its next task', async () => {
    const prefix = `idle${Date.now()}`;
    // A heap snapshot (SIGUSR2) collects garbage first: the heap then shows what is still held.
    const diagnostics = mkdtempSync(join(tmpdir(), 'tagflow-heap-'));
    const other = await Api.start({
      prefix,
      env: {
        REDIS_URL: redis.url,
        TAGSET_IDLE_S: '1',
        NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${diagnostics}`,
      },
    });
    const raw = new Redis(redis.url);
    const keys = async () => {
      let n = 0;
      let cursor = '0';
      do {
        const [next, found] = await raw.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        n += found.length;
      } while (cursor !== '0');
      return n;
    };
    const mib = async (metric: string) => Math.round((await other.metric(metric)) / 2 ** 20);
    const memory = async () => ({
      rss: await mib('process_resident_memory_bytes'),
      heap: await mib('nodejs_heap_used_bytes'),
    });
    const n = 10_000;
    try {
      const before = {
        tagsets: await other.metric('tagflow_tagsets_known'),
        keys: await keys(),
        memory: await memory(),
      };
      // One task per short-lived host, each its own tag set.
      const wf = await other.createWorkflow(workflow());
      for (let i = 0; i < n; i += 1000) {
        const tasks = Array.from({ length: 1000 }, (_, k) => task(`h${i + k}`, { tags: [`host:${prefix}-${i + k}`] }));
        expect((await other.post(`/v1/workflows/${wf.id}/tasks`, { tasks })).status).toBe(201);
      }
      await waitFor(
        'every tag set to be known',
        async () => (await other.metric('tagflow_tagsets_known')) >= before.tagsets + n,
        30_000,
      );
      const peak = { tagsets: await other.metric('tagflow_tagsets_known'), keys: await keys(), memory: await memory() };
      expect((await other.post(`/v1/workflows/${wf.id}/cancel`)).status).toBe(200);
      expect((await other.del(`/v1/workflows/${wf.id}`)).status).toBe(204);
      const deletedAt = Date.now();
      await waitFor(
        'the idle tag sets to be forgotten',
        async () => (await other.metric('tagflow_tagsets_known')) <= before.tagsets,
        60_000,
      );
      const forgotten = {
        tagsets: await other.metric('tagflow_tagsets_known'),
        keys: await keys(),
        afterS: ((Date.now() - deletedAt) / 1000).toFixed(1),
      };
      // They took memory while known; what a collection leaves is back near the start.
      expect(peak.memory.heap).toBeGreaterThan(before.memory.heap + 64);
      other.proc.kill('SIGUSR2');
      await waitFor(
        'the heap snapshot (written after a collection)',
        async () => readdirSync(diagnostics).some((f) => f.endsWith('.heapsnapshot')),
        60_000,
      );
      const after = await waitFor(
        'the heap to be back near its start after the collection',
        async () => {
          const m = await memory();
          return m.heap <= before.memory.heap + 32 ? m : undefined;
        },
        30_000,
      );
      console.log(
        `10,000 one-off tag sets, created then deleted: known ${before.tagsets} -> ${peak.tagsets} -> ${forgotten.tagsets} (${forgotten.afterS} s after the delete, TAGSET_IDLE_S 1); Redis keys ${before.keys} -> ${peak.keys} -> ${forgotten.keys}; heap ${before.memory.heap} -> ${peak.memory.heap} -> ${after.heap} MiB (after a collection); RSS ${before.memory.rss} -> ${peak.memory.rss} -> ${after.rss} MiB`,
      );
      expect(forgotten.keys).toBeLessThanOrEqual(before.keys + 5);
      expect(await other.metric('tagflow_tagsets_forgotten_total')).toBeGreaterThanOrEqual(n);
      // A forgotten tag set comes back with its next task.
      await other.createWorkflow(workflow({ sealed: true, tasks: [task('again', { tags: [`host:${prefix}-7`] })] }));
      expect((await other.take([`host:${prefix}-7`], 10)).name).toBe('again');
    } finally {
      raw.disconnect();
      await other.stop();
      rmSync(diagnostics, { recursive: true, force: true });
    }
  }, 120_000);
});
