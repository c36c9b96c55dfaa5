import { execFileSync } from 'node:child_process';
import { ConfigError } from './config.js';

/** The user a worker started as root runs its tasks as (`--run-as USER`). */
export interface RunAsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}\$?$/;

/** Users other software shares (NFS squashing, daemons): tasks should have a user of their own. */
export const SHARED_USERS = new Set(['nobody', 'daemon', 'www-data']);

/**
 * Looks the user up (through NSS, as `getent passwd` does). Only root can start processes
 * as another user, and running tasks "as" root is what the worker does without the flag,
 * so both are refused with the reason.
 */
export function resolveRunAs(name: string, uid = process.getuid?.()): RunAsUser {
  if (!USER_NAME.test(name)) throw new ConfigError(`--run-as / TAGFLOW_RUN_AS: "${name}" is not a user name`);
  if (uid !== 0) throw new ConfigError(`--run-as ${name} needs the worker to start as root (it runs as uid ${uid ?? 'unknown'}); start it as root, or drop --run-as and start it as ${name}`);
  let entry: string;
  try {
    entry = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    throw new ConfigError(`--run-as ${name}: no such user on this machine (getent passwd ${name} found nothing)`);
  }
  const [, , uidText, gidText, , home] = entry.split(':');
  const user = { name, uid: Number(uidText), gid: Number(gidText), home: home || '/' };
  if (!Number.isInteger(user.uid) || !Number.isInteger(user.gid)) throw new ConfigError(`--run-as ${name}: cannot read its uid and gid from "${entry}"`);
  if (user.uid === 0) throw new ConfigError(`--run-as ${name}: that is root; tasks would run with every right the worker has`);
  if (user.gid === 0) throw new ConfigError(`--run-as ${name}: its primary group is root's (gid 0); give tasks a user whose group is not root`);
  return user;
}
