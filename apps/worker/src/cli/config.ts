import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

export interface WorkerConfig {
  api: string;
  token?: string;
  tags: string[];
  name: string;
  concurrency: number;
  workDir: string;
  plugins: string[];
  graceS: number;
  pollWaitS: number;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
}

export const USAGE = `Usage: tagflow-worker [options]

Long-polls Tagflow for tasks carrying its tags, runs them, and reports back.

Options (each also read from the environment variable shown):
  --api URL            Tagflow API (TAGFLOW_API_URL, default http://127.0.0.1:8080)
  --token TOKEN        bearer token (TAGFLOW_TOKEN); never logged
  --tags a,b           take tasks that carry every one of these tags (TAGFLOW_TAGS)
  --name NAME          worker name (TAGFLOW_WORKER_NAME, default the host name)
  --concurrency N      tasks run at once (TAGFLOW_CONCURRENCY, default 1)
  --work-dir DIR       per-task scratch directories (TAGFLOW_WORK_DIR, default $TMPDIR/tagflow-worker)
  --plugin FILE        load an executor module; repeatable (TAGFLOW_PLUGINS, comma-separated)
  --grace-s N          on SIGTERM, time for running tasks to finish (TAGFLOW_GRACE_S, default 30)
  --poll-wait-s N      long-poll length (TAGFLOW_POLL_WAIT_S, default 30)
  --log-level LEVEL    error|warn|info|debug (TAGFLOW_LOG_LEVEL, default info)
  -h, --help           this text
`;

const TAG = /^[A-Za-z0-9_.:/=-]{1,64}$/;

export class ConfigError extends Error {}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): WorkerConfig | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      api: { type: 'string' }, token: { type: 'string' }, tags: { type: 'string' }, name: { type: 'string' },
      concurrency: { type: 'string' }, 'work-dir': { type: 'string' }, plugin: { type: 'string', multiple: true },
      'grace-s': { type: 'string' }, 'poll-wait-s': { type: 'string' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return 'help';
  const pick = (flag: string | undefined, name: string) => (flag !== undefined ? flag : env[name] !== '' ? env[name] : undefined);

  const api = pick(values.api, 'TAGFLOW_API_URL') ?? 'http://127.0.0.1:8080';
  try {
    const u = new URL(api);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  } catch {
    throw new ConfigError(`--api / TAGFLOW_API_URL must be an http(s) URL (got "${api}")`);
  }
  const tags = (pick(values.tags, 'TAGFLOW_TAGS') ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of tags) if (!TAG.test(t)) throw new ConfigError(`--tags / TAGFLOW_TAGS: "${t}" is not a tag (1-64 characters of [A-Za-z0-9_.:/=-])`);
  if (tags.length > 32) throw new ConfigError('--tags / TAGFLOW_TAGS: at most 32 tags');
  const name = pick(values.name, 'TAGFLOW_WORKER_NAME') ?? hostname();
  if (!/^[A-Za-z0-9_.:@-]{1,128}$/.test(name)) throw new ConfigError(`--name / TAGFLOW_WORKER_NAME: "${name}" must be 1-128 characters of [A-Za-z0-9_.:@-]`);
  const int = (raw: string | undefined, label: string, min: number, max: number, dflt: number) => {
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${label} must be a whole number from ${min} to ${max} (got "${raw}")`);
    return n;
  };
  const logLevel = pick(values['log-level'], 'TAGFLOW_LOG_LEVEL') ?? 'info';
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel)) throw new ConfigError(`--log-level / TAGFLOW_LOG_LEVEL must be error, warn, info or debug (got "${logLevel}")`);
  const envPlugins = (env.TAGFLOW_PLUGINS ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  return {
    api,
    token: pick(values.token, 'TAGFLOW_TOKEN'),
    tags,
    name,
    concurrency: int(pick(values.concurrency, 'TAGFLOW_CONCURRENCY'), '--concurrency / TAGFLOW_CONCURRENCY', 1, 256, 1),
    workDir: resolve(pick(values['work-dir'], 'TAGFLOW_WORK_DIR') ?? join(tmpdir(), 'tagflow-worker')),
    plugins: values.plugin?.length ? values.plugin : envPlugins,
    graceS: int(pick(values['grace-s'], 'TAGFLOW_GRACE_S'), '--grace-s / TAGFLOW_GRACE_S', 0, 86_400, 30),
    pollWaitS: int(pick(values['poll-wait-s'], 'TAGFLOW_POLL_WAIT_S'), '--poll-wait-s / TAGFLOW_POLL_WAIT_S', 1, 60, 30),
    logLevel: logLevel as WorkerConfig['logLevel'],
  };
}
