import { describe, expect, it } from '@jest/globals';
import { taskEnvironment } from './task-env.js';

const task = { workflow_id: 'wf-1', id: 'task-1', attempt: 2, lease: { token: 'lease-1', expires_at: '' } };
const worker = {
  PATH: '/usr/bin:/bin',
  LANG: 'C.UTF-8',
  LC_TIME: 'en_GB.UTF-8',
  TZ: 'UTC',
  TERM: 'xterm',
  HOME: '/home/w',
  USER: 'w',
  LOGNAME: 'w',
  DATABASE_URL: 'postgres://secret',
  AWS_SECRET_ACCESS_KEY: 'x',
  TAGFLOW_TOKEN_FILE: '/etc/tagflow/worker.token',
  TMPDIR: '/run/w',
  SSH_AUTH_SOCK: '/run/agent',
};

describe('taskEnvironment', () => {
  it('passes only the allow-listed variables of the worker, and its identity when the task runs as the worker', () => {
    expect(taskEnvironment(worker, task, { api: 'http://api', helperDir: '/w/bin' })).toEqual({
      PATH: '/w/bin:/usr/bin:/bin',
      LANG: 'C.UTF-8',
      LC_TIME: 'en_GB.UTF-8',
      TZ: 'UTC',
      TERM: 'xterm',
      HOME: '/home/w',
      USER: 'w',
      LOGNAME: 'w',
      TAGFLOW_API_URL: 'http://api',
      TAGFLOW_WORKFLOW_ID: 'wf-1',
      TAGFLOW_TASK_ID: 'task-1',
      TAGFLOW_ATTEMPT: '2',
      TAGFLOW_LEASE_TOKEN: 'lease-1',
    });
  });

  it("under --run-as, gives the identity of the task's user, not the worker's", () => {
    const env = taskEnvironment(worker, task, {
      api: 'http://api',
      helperDir: '/w/bin',
      user: { name: 'tagflow-task', uid: 990, gid: 990, home: '/nonexistent' },
    });
    expect(env).toMatchObject({ HOME: '/nonexistent', USER: 'tagflow-task', LOGNAME: 'tagflow-task' });
    expect(Object.keys(env).sort()).toEqual([
      'HOME',
      'LANG',
      'LC_TIME',
      'LOGNAME',
      'PATH',
      'TAGFLOW_API_URL',
      'TAGFLOW_ATTEMPT',
      'TAGFLOW_LEASE_TOKEN',
      'TAGFLOW_TASK_ID',
      'TAGFLOW_WORKFLOW_ID',
      'TERM',
      'TZ',
      'USER',
    ]);
  });

  it('gives a PATH even when the worker has none', () => {
    expect(taskEnvironment({}, task, { api: 'http://api', helperDir: '/w/bin' }).PATH).toBe(
      '/w/bin:/usr/local/bin:/usr/bin:/bin',
    );
  });
});
