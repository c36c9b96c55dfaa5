import { describe, expect, it } from '@jest/globals';
import { LIMITS, namespaceTag } from '@tagflow/domain';
import type { TaskEntity } from '@tagflow/persistence';
import type { Bus, JobQueue, RedisConnections, TagsetRegistry, TakenJob } from '@tagflow/queue';
import { unavailablePart } from '../common/http-exception.filter.js';
import type { JsonLogger } from '../common/logger.js';
import { ParkedPolls } from '../dispatch/parked-polls.js';
import type { ReferenceResolver } from '../engine/reference-resolver.js';
import type { LongWaits } from '../long-wait/long-waits.js';
import { MetricsService } from '../metrics/metrics.service.js';
import type { LeaseService } from './lease.service.js';
import { PollService } from './poll.service.js';

/**
 * The poll loop over several tag sets, against a queue whose answers the test decides.
 * What a worker would notice: a task leased to its poll reaches it, whatever happens to the
 * next tag set's Redis shard.
 */

const NS = 'default';
const tagsOf = (id: string) => [id, namespaceTag(NS)];

/** Each tag set's queue: the jobs it hands out, or the error its shard answers with. */
type Shard = { jobs: string[] } | { error: Error };

function pollServiceOver(
  shards: Record<string, Shard>,
  unreadable: readonly string[] = [],
  parked: ParkedPolls = { park: () => undefined, leave: () => undefined } as unknown as ParkedPolls,
) {
  const leasedTasks: string[] = [];
  const handedBack: string[] = [];
  const logged: string[] = [];
  let tokens = 0;
  const jobs = {
    take: async (tagset: string, offered: string[]): Promise<TakenJob[]> => {
      const shard = shards[tagset];
      if ('error' in shard) throw shard.error;
      const taken = shard.jobs.splice(0, offered.length);
      return taken.map((taskId, i) => ({ taskId, attempt: 1, jobId: `${taskId}:1`, token: offered[i] }));
    },
    finish: async () => undefined,
    extend: async () => undefined,
    headPriorities: async () => new Map<string, number>(),
    holding: async (tagsets: string[]) =>
      new Set(tagsets.filter((t) => 'jobs' in shards[t] && shards[t].jobs.length > 0)),
    countAtLeast: async () => 0,
  } as unknown as JobQueue;
  const leases = {
    newToken: () => `lease-${++tokens}`,
    claim: async (claims: { taskId: string; token: string; tagsetId: string }[]) =>
      claims.map((c) => {
        leasedTasks.push(c.taskId);
        return {
          id: c.taskId,
          attempt: 1,
          tagset_id: c.tagsetId,
          lease_token: c.token,
          lease_s: LIMITS.defaultLeaseSeconds,
          lease_expires_at: Date.now() + 30_000,
          resolved_input: null,
        } as unknown as TaskEntity;
      }),
    recordResolvedInputs: async () => undefined,
    handBack: async (tasks: TaskEntity[]) => {
      handedBack.push(...tasks.map((t) => t.id));
    },
  } as unknown as LeaseService;
  // A poll that does not wait: one look at the queues.
  const waits = {
    isClosing: false,
    until: async (_on: unknown, _deadline: number, look: () => Promise<unknown>) => look(),
    wakeTags: () => undefined,
  } as unknown as LongWaits;
  const service = new PollService(
    jobs,
    { ready: true } as unknown as RedisConnections,
    {} as TagsetRegistry,
    waits,
    leases,
    {
      // The database failing while a task's input is read.
      resolve: async (t: TaskEntity) => {
        if (unreadable.includes(t.id)) throw new Error('Connection terminated unexpectedly');
        return null;
      },
    } as unknown as ReferenceResolver,
    { event: (_level: string, _part: string, message: string) => logged.push(message) } as unknown as JsonLogger,
    { onEvent: () => undefined, isDegraded: false, publish: async () => undefined } as unknown as Bus,
    parked,
    new MetricsService(),
  );
  // Announced in this order, so the poll reads them in this order.
  for (const id of Object.keys(shards)) service.nudge(id, tagsOf(id));
  const poll = (first?: () => Promise<void>) =>
    service.poll({ namespace: NS, tags: Object.keys(shards), workerId: 'w1', waitMs: 0, maxTasks: 10 }, first);
  return { poll, leasedTasks, handedBack, logged };
}

const shardGone = () => new Error('Too many Cluster redirections. Last error: Error: Connection is closed.');

describe('a poll over several tag sets when a Redis shard fails', () => {
  it('answers with the tasks it already leased from another tag set when a later one cannot be read', async () => {
    const { poll, leasedTasks, logged } = pollServiceOver({
      'ts-a': { jobs: ['t1', 't2'] },
      'ts-b': { error: shardGone() },
    });
    const answered = await poll();
    expect(answered.map((l) => l.task.id)).toEqual(['t1', 't2']);
    // Every task leased is in the answer: none is left to a lease nobody holds.
    expect(answered.map((l) => l.lease.token)).toEqual(['lease-1', 'lease-2']);
    expect(leasedTasks).toEqual(['t1', 't2']);
    expect(logged).toContain('a tag set could not be read; answering with the tasks already leased');
  });

  it('fails as unavailable (503, poll again) when it has leased nothing yet', async () => {
    const { poll, leasedTasks } = pollServiceOver({
      'ts-a': { error: shardGone() },
      'ts-b': { jobs: ['t1'] },
    });
    const failure = await poll().then(
      () => null,
      (e: unknown) => e,
    );
    expect(unavailablePart(failure)).toBe('Redis');
    expect(leasedTasks).toEqual([]);
  });

  it('hands out the other tasks when one cannot be (the database failed reading its input), and gives that one back', async () => {
    const { poll, leasedTasks, handedBack } = pollServiceOver({ 'ts-a': { jobs: ['t1', 't2', 't3'] } }, ['t2']);
    const answered = await poll();
    expect(answered.map((l) => l.task.id)).toEqual(['t1', 't3']);
    expect(leasedTasks).toEqual(['t1', 't2', 't3']);
    // READY again at once instead of a lease nobody holds expiring 30 s later.
    expect(handedBack).toEqual(['t2']);
  });
});

describe("the poll of a report-and-poll call, open to what the call's reports release", () => {
  /** A task of tag set `ts-a` that a change made READY, as the engine offers it. */
  const ready = (taskId: string) => ({
    kind: 'task-ready' as const,
    taskId,
    attempt: 1,
    tagsetId: 'ts-a',
    tags: tagsOf('ts-a'),
    delayMs: 0,
    priority: 0,
  });
  /** The change's transaction commits: the planned leases are written and handed over. */
  const commit = (parked: ParkedPolls, taskId: string) => {
    const plan = parked.plan([ready(taskId)]);
    if (!plan) return false;
    plan.deliver(
      plan.jobs.map(
        (j) =>
          ({
            id: j.taskId,
            attempt: 1,
            tagset_id: j.tagsetId,
            lease_token: j.token,
            lease_s: LIMITS.defaultLeaseSeconds,
            lease_expires_at: Date.now() + 30_000,
            resolved_input: null,
          }) as unknown as TaskEntity,
      ),
    );
    return true;
  };

  it('is handed the task its reports release, answers with it, and is parked no more', async () => {
    const parked = new ParkedPolls();
    const { poll, leasedTasks } = pollServiceOver({ 'ts-a': { jobs: [] } }, [], parked);
    let handed = false;
    const answered = await poll(async () => {
      handed = commit(parked, 'next');
    });
    expect(handed).toBe(true);
    expect(answered.map((l) => l.task.id)).toEqual(['next']);
    expect(leasedTasks).toEqual([]); // not taken from the queue
    expect(parked.size).toBe(0);
  });

  it('is not open while its queues hold a task: the older one goes first', async () => {
    const parked = new ParkedPolls();
    const { poll } = pollServiceOver({ 'ts-a': { jobs: ['older'] } }, [], parked);
    let handed = true;
    const answered = await poll(async () => {
      handed = commit(parked, 'next');
    });
    expect(handed).toBe(false);
    expect(answered.map((l) => l.task.id)).toEqual(['older']);
  });

  it('gives back a task handed to it when its reports then fail, and fails with their error', async () => {
    const parked = new ParkedPolls();
    const { poll, handedBack } = pollServiceOver({ 'ts-a': { jobs: [] } }, [], parked);
    const failure = await poll(async () => {
      commit(parked, 'next');
      throw new Error('Connection terminated unexpectedly');
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(unavailablePart(failure)).toBe('database');
    expect(handedBack).toEqual(['next']);
    expect(parked.size).toBe(0);
  });

  it('is not parked again by a plan for it that is cancelled after its reports failed', async () => {
    const parked = new ParkedPolls();
    const { poll, handedBack } = pollServiceOver({ 'ts-a': { jobs: [] } }, [], parked);
    const failure = await poll(async () => {
      // Another change plans a task for it, and does not commit until after this call failed.
      const plan = parked.plan([ready('elsewhere')])!;
      setImmediate(() => plan.cancel());
      throw new Error('Connection terminated unexpectedly');
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(unavailablePart(failure)).toBe('database');
    expect(handedBack).toEqual([]);
    // Parked again, the next READY task would be leased to a poll that has answered.
    expect(parked.size).toBe(0);
    expect(parked.plan([ready('later')])).toBeNull();
  });
});
