import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttemptScope } from './isolation.js';
import { runProcess } from './process-runner.js';

/** A scope that looks at each process it is asked to admit, and admits it (or not). */
function scope(admit: (pid: number) => Promise<void>): AttemptScope {
  return { admit, signal: async () => {}, killAll: async () => {}, close: async () => {} };
}

describe('runProcess with a scope that admits processes', () => {
  const signal = new AbortController().signal;

  it("holds the process, with nothing of the task's environment, until it is admitted; then runs the command with it", async () => {
    const held: string[] = [];
    const result = await runProcess('/bin/sh', ['-c', 'echo "$SECRET $ENV"'], {
      env: { PATH: '/usr/bin:/bin', SECRET: 'only-once-inside', ENV: '/tmp/not-for-the-held-shell' },
      signal,
      scope: scope(async (pid) => void held.push(readFileSync(`/proc/${pid}/environ`, 'utf8'))),
    });
    expect(held).toEqual(['PATH=/usr/bin:/bin\0']);
    expect(result).toMatchObject({ exitCode: 0, stdout: 'only-once-inside /tmp/not-for-the-held-shell\n' });
  });

  it('never runs the command of a process that could not be admitted', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'tagflow-held-')), 'ran');
    const run = runProcess('/bin/sh', ['-c', `touch ${marker}`], {
      env: { PATH: '/usr/bin:/bin' },
      signal,
      scope: scope(() => Promise.reject(new Error('EACCES'))),
    });
    await expect(run).rejects.toThrow("could not put the task's process in its cgroup: EACCES");
    expect(existsSync(marker)).toBe(false);
  });
});
