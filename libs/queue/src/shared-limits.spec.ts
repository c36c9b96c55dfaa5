import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import type { RedisConnections } from './redis.js';
import { SharedLimits } from './shared-limits.js';

/** A Redis that answers every script after `delayMs` with `answer`, recording the scripts' keys. */
function slowRedis(delayMs: number, answer: number) {
  const calls: string[] = [];
  const command = {
    evalsha: (_sha: string, _n: number, key: string) => {
      calls.push(key);
      return new Promise((resolve) => setTimeout(() => resolve(answer), delayMs));
    },
  };
  const redis = { ready: true, command, key: (name: string) => `tf:${name}` } as unknown as RedisConnections;
  return { redis, calls };
}

describe('SharedLimits, when Redis answers late', () => {
  it('gives back a count that Redis took after the caller had stopped waiting', async () => {
    const { redis, calls } = slowRedis(700, 1);
    const limits = new SharedLimits(redis);
    await expect(limits.acquire('streams', 'key-1', 3)).rejects.toThrow('did not answer within 500 ms');
    // The acquire's own script, then (once its late answer arrives) the release.
    const deadline = Date.now() + 5_000;
    while (calls.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(calls).toEqual(['tf:{limits}:streams:key-1', 'tf:{limits}:streams:key-1']);
  });

  it('gives nothing back when the late answer took no count', async () => {
    const { redis, calls } = slowRedis(600, 0);
    const limits = new SharedLimits(redis);
    await expect(limits.acquire('streams', 'key-1', 3)).rejects.toThrow('did not answer within 500 ms');
    await new Promise((r) => setTimeout(r, 300)); // past the late answer (600 ms)
    expect(calls).toEqual(['tf:{limits}:streams:key-1']);
  });

  it('takes an answer that arrived while the process was too busy to run its timers', async () => {
    // The answer comes from another process over a pipe (I/O, read in the poll phase), 200 ms in.
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => process.stdout.write("1"), 200)']);
    const answer = new Promise((resolve) => child.stdout.once('data', (d) => resolve(Number(String(d)))));
    const redis = {
      ready: true,
      command: { evalsha: () => answer },
      key: (k: string) => k,
    } as unknown as RedisConnections;
    // Started from the check phase, so the next turn of the event loop runs timers before reading I/O.
    const { acquired } = await new Promise<{ acquired: Promise<boolean> }>((started) =>
      setImmediate(() => {
        const acquired = new SharedLimits(redis).acquire('streams', 'key-1', 3);
        // Busy past both the answer and the deadline (500 ms): both are due in the same turn.
        const until = Date.now() + 1_000;
        while (Date.now() < until) {
          // a process too busy to run its timers on time
        }
        started({ acquired });
      }),
    );
    await expect(acquired).resolves.toBe(true);
  });
});

describe('SharedLimits.release', () => {
  it('gives back the counts of one turn of the event loop in one script per key, and each caller learns when it is done', async () => {
    const calls: unknown[][] = [];
    const command = {
      evalsha: (_sha: string, _n: number, ...keysAndArgs: unknown[]) => {
        calls.push(keysAndArgs);
        return Promise.resolve(1);
      },
    };
    const redis = { ready: true, command, key: (name: string) => `tf:${name}` } as unknown as RedisConnections;
    const limits = new SharedLimits(redis);
    const released = [
      limits.release('polls', 'key-1'),
      limits.release('polls', 'key-1'),
      limits.release('polls', 'key-2'),
      limits.release('polls', 'key-1'),
    ];
    expect(calls).toEqual([]); // nothing sent within the turn
    await Promise.all(released);
    expect(calls).toEqual([
      ['tf:{limits}:polls:key-1', limits.replica, 3],
      ['tf:{limits}:polls:key-2', limits.replica, 1],
    ]);
    // A later turn starts a new batch.
    await limits.release('polls', 'key-1');
    expect(calls[2]).toEqual(['tf:{limits}:polls:key-1', limits.replica, 1]);
  });

  it("sends the counts about to be given back before this replica's next count of the same key", async () => {
    const calls: unknown[][] = [];
    const command = {
      evalsha: (_sha: string, n: number, ...keysAndArgs: unknown[]) => {
        calls.push(keysAndArgs.slice(0, n));
        return Promise.resolve(1);
      },
    };
    const redis = { ready: true, command, key: (name: string) => `tf:${name}` } as unknown as RedisConnections;
    const limits = new SharedLimits(redis);
    const released = limits.release('polls', 'key-1');
    const acquired = limits.acquire('polls', 'key-1', 2);
    expect(calls).toEqual([['tf:{limits}:polls:key-1'], ['tf:{limits}:polls:key-1', 'tf:{limits}:replicas']]);
    await Promise.all([released, acquired]);
    expect(calls).toHaveLength(2); // sent once, not again at the end of the turn
  });
});
