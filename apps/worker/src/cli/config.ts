import { hostname, tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

export interface WorkerConfig {
  api: string;
  /** A file holding the worker's key (mode 0600), or the key on standard input. */
  tokenFile?: string;
  tokenStdin: boolean;
  tags: string[];
  name: string;
  concurrency: number;
  workDir: string;
  /** Run tasks as these users, one per slot when several (the worker starts as root; its key and work directory stay root's). */
  runAs?: string[];
  /** Under --run-as: whether each attempt gets a cgroup (auto: v2, else v1's freezer, else none). */
  cgroup: 'auto' | 'v2' | 'v1' | 'off';
  plugins: string[];
  graceS: number;
  pollWaitS: number;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
}

export const USAGE = `Usage: tagflow-worker [options]

Long-polls Tagflow for the tasks it is able to run, runs them, and reports back.

Options (each also read from the environment variable shown):
  --api URL            Tagflow API (TAGFLOW_API_URL, default http://127.0.0.1:8080)
  --token-file FILE    the worker's API key, in a file only its user can read (TAGFLOW_TOKEN_FILE)
  --token-stdin        read the API key from standard input instead
  --tags a,b           what this worker is (web,eu-west,host:web01): it takes every task whose
                       tags are all among these, and untagged tasks; * takes every task (TAGFLOW_TAGS)
  --name NAME          worker name (TAGFLOW_WORKER_NAME, default the host name)
  --concurrency N      tasks run at once (TAGFLOW_CONCURRENCY, default 1)
  --work-dir DIR       per-task scratch directories (TAGFLOW_WORK_DIR, default $TMPDIR/tagflow-worker-USER, mode 0700)
  --run-as USER[,USER] run tasks as USER; the worker itself starts as root, so tasks cannot read
                       its key file or its process; several users: one per slot (TAGFLOW_RUN_AS)
  --cgroup MODE        with --run-as, a cgroup per attempt so nothing of it outlives it:
                       auto|v2|v1|off (TAGFLOW_CGROUP, default auto: v2, else v1, else no cgroup)
  --plugin FILE        load an executor module; repeatable (TAGFLOW_PLUGINS, comma-separated)
  --grace-s N          on SIGTERM, time for running tasks to finish (TAGFLOW_GRACE_S, default 30)
  --poll-wait-s N      long-poll length (TAGFLOW_POLL_WAIT_S, default 30)
  --log-level LEVEL    error|warn|info|debug (TAGFLOW_LOG_LEVEL, default info)
  -h, --help           this text
`;

const TAG = /^(\*|[A-Za-z0-9_.:/=-]{1,64})$/;

export class ConfigError extends Error {}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): WorkerConfig | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      api: { type: 'string' },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      'token-stdin': { type: 'boolean' },
      tags: { type: 'string' },
      name: { type: 'string' },
      concurrency: { type: 'string' },
      'work-dir': { type: 'string' },
      'run-as': { type: 'string' },
      cgroup: { type: 'string' },
      plugin: { type: 'string', multiple: true },
      'grace-s': { type: 'string' },
      'poll-wait-s': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return 'help';
  const pick = (flag: string | undefined, name: string) =>
    flag !== undefined ? flag : env[name] !== '' ? env[name] : undefined;
  // A key on the command line or in the environment is readable by every task the worker runs (/proc).
  if (values.token !== undefined)
    throw new ConfigError(
      '--token is not accepted: a command line is readable by every process of the machine; put the key in a file (chmod 600) and pass --token-file FILE, or pipe it to --token-stdin',
    );
  if (env.TAGFLOW_TOKEN)
    throw new ConfigError(
      'TAGFLOW_TOKEN is not read by the worker: its tasks could read it from /proc; put the key in a file (chmod 600) and pass --token-file FILE (or TAGFLOW_TOKEN_FILE)',
    );
  const tokenFile = pick(values['token-file'], 'TAGFLOW_TOKEN_FILE');
  if (tokenFile !== undefined && values['token-stdin'])
    throw new ConfigError('give --token-file or --token-stdin, not both');

  const api = pick(values.api, 'TAGFLOW_API_URL') ?? 'http://127.0.0.1:8080';
  try {
    const u = new URL(api);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  } catch {
    throw new ConfigError(`--api / TAGFLOW_API_URL must be an http(s) URL (got "${api}")`);
  }
  const tags = (pick(values.tags, 'TAGFLOW_TAGS') ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  for (const t of tags)
    if (!TAG.test(t))
      throw new ConfigError(`--tags / TAGFLOW_TAGS: "${t}" is not a tag (1-64 characters of [A-Za-z0-9_.:/=-]) or *`);
  if (tags.length > 32) throw new ConfigError('--tags / TAGFLOW_TAGS: at most 32 tags');
  const name = pick(values.name, 'TAGFLOW_WORKER_NAME') ?? hostname();
  if (!/^[A-Za-z0-9_.:@-]{1,128}$/.test(name))
    throw new ConfigError(`--name / TAGFLOW_WORKER_NAME: "${name}" must be 1-128 characters of [A-Za-z0-9_.:@-]`);
  const int = (raw: string | undefined, label: string, min: number, max: number, dflt: number) => {
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new ConfigError(`${label} must be a whole number from ${min} to ${max} (got "${raw}")`);
    return n;
  };
  const logLevel = pick(values['log-level'], 'TAGFLOW_LOG_LEVEL') ?? 'info';
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel))
    throw new ConfigError(`--log-level / TAGFLOW_LOG_LEVEL must be error, warn, info or debug (got "${logLevel}")`);
  const runAs = pick(values['run-as'], 'TAGFLOW_RUN_AS')
    ?.split(',')
    .map((u) => u.trim());
  const cgroup = pick(values.cgroup, 'TAGFLOW_CGROUP') ?? 'auto';
  if (!['auto', 'v2', 'v1', 'off'].includes(cgroup))
    throw new ConfigError(`--cgroup / TAGFLOW_CGROUP must be auto, v2, v1 or off (got "${cgroup}")`);
  if (runAs === undefined && (cgroup === 'v2' || cgroup === 'v1'))
    throw new ConfigError(`--cgroup ${cgroup} applies to tasks run as another user: give --run-as USER too`);
  const envPlugins = (env.TAGFLOW_PLUGINS ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  return {
    api,
    tokenFile: tokenFile === undefined ? undefined : resolve(tokenFile),
    tokenStdin: values['token-stdin'] === true,
    tags,
    name,
    concurrency: int(pick(values.concurrency, 'TAGFLOW_CONCURRENCY'), '--concurrency / TAGFLOW_CONCURRENCY', 1, 256, 1),
    workDir: resolve(
      pick(values['work-dir'], 'TAGFLOW_WORK_DIR') ?? join(tmpdir(), `tagflow-worker-${userInfo().username}`),
    ),
    runAs,
    cgroup: cgroup as WorkerConfig['cgroup'],
    plugins: values.plugin?.length ? values.plugin : envPlugins,
    graceS: int(pick(values['grace-s'], 'TAGFLOW_GRACE_S'), '--grace-s / TAGFLOW_GRACE_S', 0, 86_400, 30),
    pollWaitS: int(
      pick(values['poll-wait-s'], 'TAGFLOW_POLL_WAIT_S'),
      '--poll-wait-s / TAGFLOW_POLL_WAIT_S',
      1,
      60,
      30,
    ),
    logLevel: logLevel as WorkerConfig['logLevel'],
  };
}
