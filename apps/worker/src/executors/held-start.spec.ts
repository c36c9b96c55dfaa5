import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { HELD_ENV, heldCommand, releaseScript } from './held-start.js';

/** Runs `env` held, feeding fd 3 with `gate` (or nothing), as runProcess does once a process is inside. */
function runHeld(gate: string | null): { status: number | null; stdout: string } {
  const [file, argv] = heldCommand('/usr/bin/env', []);
  const r = spawnSync('/bin/sh', ['-c', `exec "$@" 3<&0 </dev/null`, 'feed', file, ...argv], {
    input: gate ?? '',
    env: HELD_ENV,
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout };
}

describe('a held start', () => {
  it("lets the command run with exactly the task's environment, quotes and new lines included", () => {
    const env = { PATH: '/usr/bin:/bin', QUOTED: "it's $HOME `x`", LINES: 'a\nb', EMPTY: '' };
    const r = runHeld(releaseScript(env));
    expect(r.status).toBe(0);
    const seen = Object.fromEntries(
      r.stdout
        .split('\n')
        .filter((l) => /^[A-Z]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(seen).toMatchObject({ PATH: '/usr/bin:/bin', QUOTED: "it's $HOME `x`", LINES: 'a', EMPTY: '' });
    expect(r.stdout).toContain('LINES=a\nb\n');
    expect(r.stdout).not.toMatch(/^(PWD|tagflow_admitted)=/m);
  });

  it('does not run the command when fd 3 closes without the go (the process was not put inside)', () => {
    expect(runHeld(null)).toEqual({ status: 1, stdout: '' });
    expect(runHeld('export X=1\n')).toEqual({ status: 1, stdout: '' });
  });

  it('refuses a name a shell cannot export', () => {
    expect(() => releaseScript({ 'my.var': '1' })).toThrow('environment variable "my.var" cannot be passed');
  });
});
