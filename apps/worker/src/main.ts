import { keepAliveSend } from './poller/keep-alive-send.js';
import { constants as osConstants, userInfo } from 'node:os';
import { TagflowClient } from '@tagflow/client';
import { ConfigError, parseConfig, USAGE } from './cli/config.js';
import { readToken } from './cli/token.js';
import { resolveRunAsUsers, RunAsPool, SHARED_USERS, type RunAsUser } from './cli/run-as.js';
import { chooseIsolation } from './cli/isolation.js';
import type { Isolation } from './executors/isolation.js';
import { dataCommand } from './cli/data-command.js';
import { jsonLogger } from './cli/logger.js';
import { ExecutorRegistry } from './executors/registry.js';
import { Agent } from './poller/agent.js';

/** tagflow-worker: see USAGE in cli/config.ts and the README. */
async function main(): Promise<void> {
  if (process.argv[2] === 'data') {
    const code = await dataCommand(process.argv.slice(3), process.env, {
      out: (s) => process.stdout.write(s),
      err: (s) => process.stderr.write(s),
      stdin: () => readStdin(),
    });
    process.exit(code);
  }
  let config;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (e) {
    process.stderr.write(`tagflow-worker: ${(e as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (config === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  let token: string | undefined;
  let users: RunAsUser[] | undefined;
  try {
    if (config.runAs !== undefined) users = resolveRunAsUsers(config.runAs, config.concurrency);
    token = await readToken(config);
  } catch (e) {
    process.stderr.write(`tagflow-worker: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const log = jsonLogger(config.logLevel);
  const executors = new ExecutorRegistry();
  for (const plugin of config.plugins) {
    try {
      const types = await executors.load(plugin);
      log('info', 'plugin loaded', { plugin, types });
    } catch (e) {
      process.stderr.write(`tagflow-worker: cannot load plugin ${plugin}: ${(e as Error).message}\n`);
      process.exit(2);
    }
  }
  const client = new TagflowClient({
    url: config.api,
    token,
    send: keepAliveSend(),
    onRetry: ({ method, path, attempt, delayMs, error }) =>
      log('debug', 'retrying a call', { method, path, attempt, delay_ms: delayMs, error: error.message }),
  });
  let runAs: { users: RunAsPool; isolation: Isolation } | undefined;
  if (users) {
    for (const user of users) {
      log('info', 'tasks run as another user', { user: user.name, uid: user.uid, gid: user.gid });
      if (SHARED_USERS.has(user.name))
        log(
          'warn',
          'tasks run as a user other software shares; make them one of their own (useradd --system tagflow-task)',
          { user: user.name },
        );
    }
    try {
      runAs = { users: new RunAsPool(users), isolation: await chooseIsolation(config, users, log) };
    } catch (e) {
      process.stderr.write(`tagflow-worker: ${(e as Error).message}\n`);
      process.exit(e instanceof ConfigError ? 2 : 1);
    }
  } else if (token !== undefined) {
    // Same user, so nothing stands between a task and the key: /proc/PID/mem, the key file, a core dump.
    log(
      'warn',
      "tasks run as the worker's own user and can read its key (the key file, the worker's memory through /proc); start the worker as root with --run-as USER to keep the key out of their reach",
      { user: userInfo().username },
    );
  }
  const agent = new Agent(config, client, executors, log, runAs);

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log('warn', 'second signal: exiting now', { signal });
      process.exit(130);
    }
    log('info', 'stopping', { signal, grace_s: config.graceS });
    // Stopped by a signal is not a clean exit (128 + the signal's number), so a supervisor
    // that restarts on failure brings back a worker that a task, or anything else, stopped.
    agent.stop(config.graceS * 1000).then(
      () => process.exit(128 + osConstants.signals[signal]),
      (e: unknown) => {
        log('error', 'stop failed', { error: (e as Error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    await agent.run();
  } catch (e) {
    process.stderr.write(`tagflow-worker: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

void main().catch((e: unknown) => {
  process.stderr.write(`tagflow-worker: ${e instanceof ConfigError ? e.message : ((e as Error).stack ?? String(e))}\n`);
  process.exit(1);
});
