/**
 * Starting a process inside an attempt's cgroup before anything of the task's runs.
 *
 * The new process is a shell with a clean environment, so nothing of the task's acts before it
 * is inside (no LD_PRELOAD for the loader, no BASH_FUNC_ or SHELLOPTS for a bash that is
 * /bin/sh). It waits on fd 3. Once the worker has put it in the cgroup, it writes there the
 * task's environment as `export` lines and a last line that lets the shell go on; the shell
 * then becomes the command (same pid, so inside). If fd 3 closes without that last line (the
 * process could not be put inside), the shell exits 1 without running the command. The `cat`
 * that reads fd 3 runs before the shell is inside, and is the only process that does.
 */
const HELD = 'eval "$(cat <&3)" && [ "${tagflow_admitted-}" = 1 ] && exec 3<&- && exec "$@"';

/** The held shell's environment: enough to find `cat`. */
export const HELD_ENV = { PATH: '/usr/bin:/bin' };

/** Names a POSIX shell can export (and the shell action's `env` accepts). */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The command and arguments that run `file argv...` held (see above). */
export function heldCommand(file: string, argv: string[]): [string, string[]] {
  return ['/bin/sh', ['-c', HELD, 'tagflow-attempt', file, ...argv]];
}

/** What the worker writes on fd 3 once the process is inside: the environment, then the go. */
export function releaseScript(env: Record<string, string>): string {
  const lines = ['unset PWD']; // the held shell's own, not the task's
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name))
      throw new Error(
        `environment variable "${name}" cannot be passed into an attempt's cgroup: a name is letters, digits and _`,
      );
    lines.push(`export ${name}='${value.replaceAll("'", "'\\''")}'`);
  }
  return `${lines.join('\n')}\ntagflow_admitted=1\n`;
}
