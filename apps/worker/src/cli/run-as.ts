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
  if (uid !== 0)
    throw new ConfigError(
      `--run-as ${name} needs the worker to start as root (it runs as uid ${uid ?? 'unknown'}); start it as root, or drop --run-as and start it as ${name}`,
    );
  let entry: string;
  try {
    entry = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    throw new ConfigError(`--run-as ${name}: no such user on this machine (getent passwd ${name} found nothing)`);
  }
  const [, , uidText, gidText, , home] = entry.split(':');
  const user = { name, uid: Number(uidText), gid: Number(gidText), home: home || '/' };
  if (!Number.isInteger(user.uid) || !Number.isInteger(user.gid))
    throw new ConfigError(`--run-as ${name}: cannot read its uid and gid from "${entry}"`);
  if (user.uid === 0)
    throw new ConfigError(`--run-as ${name}: that is root; tasks would run with every right the worker has`);
  if (user.gid === 0)
    throw new ConfigError(
      `--run-as ${name}: its primary group is root's (gid 0); give tasks a user whose group is not root`,
    );
  return user;
}

/**
 * `--run-as a,b,c`: several users give each slot a user of its own, so attempts that run at
 * the same time cannot read each other either; they must cover --concurrency. One user is
 * shared by every slot (the worker warns when that lets attempts meet).
 */
export function resolveRunAsUsers(names: string[], concurrency: number, uid = process.getuid?.()): RunAsUser[] {
  const spec = names.join(',');
  if (new Set(names).size !== names.length) throw new ConfigError(`--run-as ${spec}: a user is named twice`);
  if (names.length > 1 && names.length < concurrency) {
    throw new ConfigError(
      `--run-as ${spec}: ${names.length} users for --concurrency ${concurrency}; give one user per slot, or a single user that every slot shares`,
    );
  }
  const users = names.map((name) => resolveRunAs(name, uid));
  if (new Set(users.map((u) => u.uid)).size !== users.length)
    throw new ConfigError(`--run-as ${spec}: two of these names have the same uid, so they are one user`);
  return users;
}

/** The users of --run-as, one per running attempt when there are several. */
export class RunAsPool {
  private readonly free: RunAsUser[];

  constructor(readonly users: RunAsUser[]) {
    this.free = [...users];
  }

  /** A user no running attempt has (the one user, when there is only one). */
  take(): RunAsUser {
    if (this.users.length === 1) return this.users[0];
    const user = this.free.shift();
    if (!user) throw new Error('more attempts than --run-as users'); // --concurrency is checked against them at start
    return user;
  }

  /** Once nothing of the attempt runs any more. */
  give(user: RunAsUser): void {
    if (this.users.length > 1) this.free.push(user);
  }
}
