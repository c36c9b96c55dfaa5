import { describe, expect, it } from '@jest/globals';
import type { TaskEntity } from '@tagflow/persistence';
import type { ReadyTask } from '../engine/hand-off.js';
import { ParkedPolls, type ParkedPoll } from './parked-polls.js';

const NS = '@ns:default';

function poll(tags: string[], maxTasks = 1, extra: Partial<ParkedPoll> = {}): ParkedPoll & { got: string[] } {
  const p = {
    tags: [...tags, NS],
    maxTasks,
    workerId: null,
    got: [] as string[],
    accept(leased: readonly TaskEntity[]) {
      p.got.push(...leased.map((t) => t.id));
    },
    ...extra,
  };
  return p;
}

function ready(id: string, tags: string[], priority = 0): ReadyTask {
  return {
    kind: 'task-ready',
    taskId: id,
    attempt: 1,
    tagsetId: `ts-${tags.join(',')}`,
    tags: [...tags, NS],
    delayMs: 0,
    priority,
  };
}

/** The plan's leases as the engine writes them (every one), then delivered. */
function commit(parked: ParkedPolls, tasks: ReadyTask[]): number {
  const plan = parked.plan(tasks);
  if (!plan) return 0;
  plan.deliver(plan.jobs.map((j) => ({ id: j.taskId, lease_token: j.token }) as TaskEntity));
  return plan.jobs.length;
}

describe('ParkedPolls: tasks made READY handed to the polls parked here', () => {
  it('gives a burst of n tasks to n parked polls one each, in the order they parked', () => {
    const parked = new ParkedPolls();
    const polls = Array.from({ length: 500 }, () => poll(['burst']));
    for (const p of polls) parked.park(p);
    const tasks = polls.map((_, i) => ready(`t${i}`, ['burst']));
    expect(commit(parked, tasks)).toBe(500);
    expect(polls.map((p) => p.got)).toEqual(tasks.map((t) => [t.taskId]));
    expect(parked.size).toBe(0);
  });

  it('fills a poll up to its max_tasks before the next, skips a poll whose client went, and leaves the rest parked', () => {
    const parked = new ParkedPolls();
    const gone = new AbortController();
    gone.abort();
    const [a, b, c, d] = [poll(['web'], 2), poll(['web'], 1, { gone: gone.signal }), poll(['web'], 3), poll(['web'])];
    for (const p of [a, b, c, d]) parked.park(p);
    expect(
      commit(
        parked,
        ['1', '2', '3', '4'].map((id) => ready(id, ['web'])),
      ),
    ).toBe(4);
    expect([a.got, b.got, c.got, d.got]).toEqual([['1', '2'], [], ['3', '4'], []]);
    // a and c answered; b (gone) and d still parked.
    expect(parked.size).toBe(2);
  });

  it('puts every reserved poll back when the transaction does not commit, full ones included', () => {
    const parked = new ParkedPolls();
    const [a, b] = [poll(['web']), poll(['web'], 5)];
    parked.park(a);
    parked.park(b);
    const plan = parked.plan([ready('1', ['web']), ready('2', ['web'])]);
    expect(plan?.jobs.map((j) => j.taskId)).toEqual(['1', '2']);
    expect(parked.size).toBe(0);
    plan!.cancel();
    expect(parked.size).toBe(2);
    expect(commit(parked, [ready('3', ['web'])])).toBe(1);
    expect(a.got).toEqual(['3']);
  });
});
