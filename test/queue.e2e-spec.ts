import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { JobQueue, jobIdFor, RedisConnections, TagsetRegistry } from '@tagflow/queue';
import { redisUrl, shortId } from './support/harness.js';

/**
 * The job queue against a real Redis and the BullMQ installed: each reading Tagflow makes
 * of BullMQ's own layout (libs/queue/src/bullmq-layout.ts) agrees with what BullMQ itself
 * says of the same jobs. A BullMQ whose layout moved fails here, not in production.
 */
describe("the job queue on BullMQ's layout", () => {
  let redis: RedisConnections;
  let jobs: JobQueue;
  const prefix = `q${shortId()}`;
  beforeAll(async () => {
    redis = new RedisConnections({ target: { mode: 'single', url: redisUrl() }, prefix, defaultLockMs: 30_000 });
    await redis.start();
    jobs = new JobQueue(redis, new TagsetRegistry(redis));
    jobs.start();
  });
  afterAll(async () => {
    await jobs?.close();
    await redis?.close();
  });

  const enqueue = (tagset: string, priorities: number[]) =>
    jobs.enqueue(
      priorities.map((priority, i) => ({
        taskId: `${tagset}-t${i}`,
        attempt: 1,
        tagsetId: tagset,
        tags: ['x'],
        delayMs: 0,
        priority,
      })),
    );

  it("reads each tag set's head priority and how many wait at or above one, as BullMQ orders them", async () => {
    const [a, b] = [`a${shortId()}`, `b${shortId()}`];
    await enqueue(a, [0, 5, -3, 5, 100]);
    await enqueue(b, [-100, -7]);
    expect(await jobs.headPriorities([a, b, `empty${shortId()}`])).toEqual(
      new Map([
        [a, 100],
        [b, -7],
      ]),
    );
    expect(await jobs.countAtLeast(a, 5)).toBe(3);
    expect(await jobs.countAtLeast(a, 0)).toBe(4);
    expect(await jobs.countAtLeast(b, 0)).toBe(0);
    // BullMQ's own view of the same queue: the same jobs, highest priority first.
    const queue = new Queue(`ts-${a}`, { connection: redis.command, prefix });
    const waiting = await queue.getPrioritized();
    expect(waiting.map((j) => j.id).sort()).toEqual([0, 1, 2, 3, 4].map((i) => jobIdFor(`${a}-t${i}`, 1)).sort());
    const taken = await jobs.take(a, ['k1', 'k2', 'k3']);
    expect(taken.map((t) => t.taskId)).toEqual([`${a}-t4`, `${a}-t1`, `${a}-t3`]);
    await queue.close();
  });

  it('tells which queues hold a job not fetched yet: waiting, or delayed whether due or not', async () => {
    const [waiting, delayed, due, fetched, empty] = ['w', 'd', 'u', 'f', 'e'].map((k) => `${k}${shortId()}`);
    await enqueue(waiting, [0]);
    const later = (tagset: string, delayMs: number) =>
      jobs.enqueue([{ taskId: `${tagset}-t0`, attempt: 2, tagsetId: tagset, tags: ['x'], delayMs, priority: 0 }]);
    await later(delayed, 60_000);
    await later(due, 1);
    await enqueue(fetched, [0]);
    expect(await jobs.take(fetched, ['k'])).toHaveLength(1);
    expect([...(await jobs.holding([waiting, delayed, due, fetched, empty]))].sort()).toEqual(
      [waiting, delayed, due].sort(),
    );
    // BullMQ's own view: both delayed jobs are in its delayed set (a due one moves only when a
    // job of its queue is fetched), the waiting one is prioritized.
    for (const [tagset, count] of [
      [delayed, 'getDelayedCount'],
      [due, 'getDelayedCount'],
      [waiting, 'getPrioritizedCount'],
    ] as const) {
      const queue = new Queue(`ts-${tagset}`, { connection: redis.command, prefix });
      expect({ tagset, n: await queue[count]() }).toEqual({ tagset, n: 1 });
      await queue.close();
    }
  });

  it('tells a waiting job from a fetched one (with when it was fetched) and a missing one, and releases an orphan by its lock', async () => {
    const t = `c${shortId()}`;
    await enqueue(t, [0, 0]);
    const before = Date.now();
    const [fetched] = await jobs.take(t, ['lock-token-1']);
    const [waiting, missing] = [jobIdFor(`${t}-t1`, 1), jobIdFor(`${t}-gone`, 1)];
    const where = await jobs.inspect([
      { tagsetId: t, jobId: fetched.jobId },
      { tagsetId: t, jobId: waiting },
      { tagsetId: t, jobId: missing },
    ]);
    expect(where[0]).toEqual({ state: 'active', activeSince: expect.any(Number) });
    expect((where[0] as { activeSince: number }).activeSince).toBeGreaterThanOrEqual(before - 1000);
    expect(where.slice(1)).toEqual([{ state: 'queued' }, { state: 'missing' }]);
    // BullMQ agrees, and the lock Tagflow reads is the token the job was fetched with.
    const queue = new Queue(`ts-${t}`, { connection: redis.command, prefix });
    expect(await (await queue.getJob(fetched.jobId))!.getState()).toBe('active');
    await jobs.releaseOrphan(t, fetched.jobId);
    expect(await queue.getJob(fetched.jobId)).toBeUndefined();
    expect((await jobs.inspect([{ tagsetId: t, jobId: fetched.jobId }]))[0]).toEqual({ state: 'missing' });
    await queue.close();
  });
});
