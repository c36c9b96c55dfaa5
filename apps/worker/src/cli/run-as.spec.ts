import { describe, expect, it } from '@jest/globals';
import { parseConfig } from './config.js';
import { resolveRunAsUsers, RunAsPool } from './run-as.js';

const user = (name: string, uid: number) => ({ name, uid, gid: uid, home: '/nonexistent' });

describe('--run-as with several users', () => {
  it('reads a list, and --cgroup with it', () => {
    const config = parseConfig(['--run-as', 'task1, task2', '--cgroup', 'off', '--concurrency', '2'], {});
    expect(config).toMatchObject({ runAs: ['task1', 'task2'], cgroup: 'off', concurrency: 2 });
    expect(parseConfig([], {})).toMatchObject({ runAs: undefined, cgroup: 'auto' });
    expect(parseConfig([], { TAGFLOW_RUN_AS: 'task1', TAGFLOW_CGROUP: 'v1' })).toMatchObject({
      runAs: ['task1'],
      cgroup: 'v1',
    });
  });

  it('refuses a cgroup mode it does not know, or a cgroup without --run-as', () => {
    expect(() => parseConfig(['--run-as', 'task1', '--cgroup', 'v3'], {})).toThrow(
      '--cgroup / TAGFLOW_CGROUP must be auto, v2, v1 or off (got "v3")',
    );
    expect(() => parseConfig(['--cgroup', 'v2'], {})).toThrow('--cgroup v2 applies to tasks run as another user');
  });

  it('wants one user per slot, each named once', () => {
    expect(() => resolveRunAsUsers(['task1', 'task2'], 3, 0)).toThrow(
      '--run-as task1,task2: 2 users for --concurrency 3; give one user per slot',
    );
    expect(() => resolveRunAsUsers(['task1', 'task1'], 1, 0)).toThrow('a user is named twice');
  });

  it('gives each running attempt a user of its own, and back once it is over', () => {
    const pool = new RunAsPool([user('task1', 901), user('task2', 902)]);
    const [a, b] = [pool.take(), pool.take()];
    expect([a.name, b.name]).toEqual(['task1', 'task2']);
    expect(() => pool.take()).toThrow('more attempts than --run-as users');
    pool.give(a);
    expect(pool.take()).toBe(a);
  });

  it('shares a single user among all slots', () => {
    const pool = new RunAsPool([user('task1', 901)]);
    expect([pool.take(), pool.take()].map((u) => u.name)).toEqual(['task1', 'task1']);
  });
});
