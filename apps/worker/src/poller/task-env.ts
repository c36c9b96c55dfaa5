import type { LeasedTask } from '@tagflow/client';
import type { RunAsUser } from '../cli/run-as.js';

/**
 * The only variables of the worker's own environment a task gets, with or without
 * `--run-as`: what a unit or a shell sets for the worker (credentials, DATABASE_URL, a key
 * someone exported) never reaches a task by inheritance.
 */
const PASSED = /^(PATH|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TERM)$/;
/** Who the task's user is. Without --run-as that is the worker's user, so the worker's own values hold. */
const IDENTITY = ['HOME', 'USER', 'LOGNAME'];

/**
 * A task's environment before its action's own `env`: the allow-listed part of the worker's,
 * its user's identity, and what `tagflow-worker data ...` needs inside the task.
 */
export function taskEnvironment(
  workerEnv: NodeJS.ProcessEnv,
  task: Pick<LeasedTask, 'workflow_id' | 'id' | 'attempt' | 'lease'>,
  o: { api: string; helperDir: string; user?: RunAsUser },
): Record<string, string> {
  const passed = (k: string) => PASSED.test(k) || (!o.user && IDENTITY.includes(k));
  const env = Object.fromEntries(Object.entries(workerEnv).filter(([k, v]) => v !== undefined && passed(k))) as Record<
    string,
    string
  >;
  return {
    ...env,
    ...(o.user ? { HOME: o.user.home, USER: o.user.name, LOGNAME: o.user.name } : {}),
    TAGFLOW_API_URL: o.api,
    TAGFLOW_WORKFLOW_ID: task.workflow_id,
    TAGFLOW_TASK_ID: task.id,
    TAGFLOW_ATTEMPT: String(task.attempt),
    TAGFLOW_LEASE_TOKEN: task.lease.token,
    PATH: `${o.helperDir}:${env.PATH ?? '/usr/local/bin:/usr/bin:/bin'}`,
  };
}
