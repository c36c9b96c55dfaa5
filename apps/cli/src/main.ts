import { Command, CommanderError, Option } from 'commander';
import {
  allPages,
  isTerminal,
  TAGFLOW_VERSION,
  TagflowApiError,
  TagflowClient,
  TagflowNetworkError,
  type KeyRole,
  type Task,
  type Workflow,
} from '@tagflow/client';
import { isTerminalWorkflow } from '@tagflow/domain';
import { connection, UsageError } from './config.js';
import { counts, print, when, type Format } from './output.js';
import { loadWorkflowFile, WorkflowFileError } from './workflow-file.js';

const program = new Command('tagflow')
  .description('Tagflow from a terminal: apply workflow files, see what runs, follow output.')
  .version(TAGFLOW_VERSION)
  .option('--url <url>', 'the API (TAGFLOW_URL, config file; default http://127.0.0.1:8080)')
  .option('--namespace <ns>', 'act in this namespace (an all-namespaces admin key only; TAGFLOW_NAMESPACE)')
  .option(
    '--config <file>',
    'config file: url, token or token_file, namespace (TAGFLOW_CONFIG; default ~/.config/tagflow/config.yaml)',
  )
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'yaml']).default('table'))
  .addHelpText(
    'after',
    '\nThe key is read from TAGFLOW_TOKEN or the config file (never from the command line, where other users could see it).',
  )
  .showHelpAfterError();

function client(): TagflowClient {
  const opts = program.opts<{ url?: string; namespace?: string; config?: string }>();
  const c = connection(opts);
  return new TagflowClient({ url: c.url, token: c.token, namespace: c.namespace });
}
const format = () => program.opts<{ output: Format }>().output;
const out = (s: string): void => void process.stdout.write(s);

// ---- apply ----
program
  .command('apply')
  .description('create a workflow from a YAML or JSON file (checked here first, with line numbers)')
  .requiredOption('-f, --file <file>', 'the workflow file')
  .option(
    '--set <key=value>',
    'set workflow.input.KEY (value read as YAML); repeatable',
    (v: string, all: string[]) => [...all, v],
    [] as string[],
  )
  .option('--dry-run', 'check the file and print the workflow; send nothing')
  .option('--wait', 'wait until the workflow is finished; exit 0 only if it succeeded')
  .option('--timeout <s>', 'with --wait: give up after this many seconds (exit 124)', positive)
  .action(async (o: { file: string; set: string[]; dryRun?: boolean; wait?: boolean; timeout?: number }) => {
    const spec = await loadWorkflowFile(o.file, o.set);
    if (o.wait && spec.sealed !== true) {
      throw new UsageError(
        `${o.file} does not say "sealed: true": the workflow would wait for more tasks and --wait for ever (seal it in the file, or apply without --wait and seal it later)`,
      );
    }
    if (o.dryRun) return print(format() === 'table' ? 'yaml' : format(), spec, () => ({ head: [], rows: [] }));
    const tf = client();
    let wf: Workflow;
    try {
      wf = await tf.createWorkflow(spec);
    } catch (e) {
      // What only the API can check (requires of unknown tasks, cycles, references): still the file's problem.
      if (e instanceof TagflowApiError && (e.status === 400 || e.status === 422))
        throw new UsageError(`${o.file}: the API refused it: ${e.message}`);
      throw e;
    }
    if (format() === 'table') out(`workflow ${wf.id} created (${wf.name}, ${wf.state})\n`);
    if (o.wait) {
      wf = await waitForWorkflow(tf, wf, o.timeout);
      if (format() === 'table') out(`workflow ${wf.id} ${wf.state}: ${counts(wf.task_counts)}\n`);
      else print(format(), wf, () => ({ head: [], rows: [] }));
      process.exitCode = wf.state === 'SUCCESS' ? 0 : !isTerminalWorkflow(wf.state) ? 124 : 1;
    } else if (format() !== 'table') {
      print(format(), wf, () => ({ head: [], rows: [] }));
    }
  });

// ---- get ----
const get = program
  .command('get')
  .description("list workflows, a workflow's tasks, workers, schedules or concurrency limits");
get
  .command('workflows')
  .option('--state <state>')
  .option('--name <name>')
  .option('--tag <tag>')
  .option('--limit <n>', 'at most this many (newest first)', positive, 50)
  .action(async (o: { state?: Workflow['state']; name?: string; tag?: string; limit: number }) => {
    const tf = client();
    const workflows = await allPages(
      (q) => tf.listWorkflows({ state: o.state, name: o.name, tag: o.tag, ...q }),
      o.limit,
    );
    print(format(), workflows, () => ({
      head: ['ID', 'NAME', 'STATE', 'TASKS', 'CREATED'],
      rows: workflows.map((w) => [
        w.id,
        w.name,
        w.state + (w.sealed ? '' : ' (open)'),
        counts(w.task_counts),
        when(w.created_at),
      ]),
    }));
  });
get
  .command('tasks <workflow>')
  .option('--state <state>')
  .option('--tag <tag>')
  .action(async (workflow: string, o: { state?: Task['state']; tag?: string }) => {
    const tf = client();
    const tasks = await allPages((q) => tf.listTasks(workflow, { state: o.state, tag: o.tag, ...q }));
    print(format(), tasks, () => ({
      head: ['ID', 'NAME', 'STATE', 'ATTEMPT', 'TAGS', 'WORKER'],
      rows: tasks.map((t) => [
        t.id,
        t.name,
        t.state + (t.handled ? ' (handled)' : ''),
        String(t.attempt),
        t.tags.join(',') || '-',
        t.worker_id ?? '-',
      ]),
    }));
  });
get.command('workers').action(async () => {
  const tf = client();
  const workers = await allPages((q) => tf.listWorkers(q));
  print(format(), workers, () => ({
    head: ['ID', 'NAME', 'TAGS', 'LAST SEEN', 'RUNNING'],
    rows: workers.map((w) => [
      w.id,
      w.name,
      w.tags.join(',') || '-',
      when(w.last_seen_at),
      String((w as { running_task_ids?: string[] }).running_task_ids?.length ?? 0),
    ]),
  }));
});

get.command('schedules').action(async () => {
  const tf = client();
  const schedules = await allPages((q) => tf.listSchedules(q));
  print(format(), schedules, () => ({
    head: ['ID', 'NAME', 'CRON', 'TIMEZONE', 'STATE', 'NEXT RUN', 'LAST RUN'],
    rows: schedules.map((s) => [
      s.id,
      s.name,
      s.cron,
      s.timezone,
      s.paused ? (s.paused_reason ?? 'paused') : 'active',
      when(s.next_run_at),
      when(s.last_run_at),
    ]),
  }));
});
get.command('limits').action(async () => {
  const tf = client();
  const { items } = await tf.listLimits();
  print(format(), items, () => ({
    head: ['TAG', 'MAX RUNNING', 'RUNNING', 'HELD'],
    rows: items.map((l) => [l.tag, String(l.max_running), String(l.running), String(l.held)]),
  }));
});

// ---- describe ----
const describe = program.command('describe').description('a workflow, a task or a schedule in full');
describe.command('workflow <id>').action(async (id: string) => {
  const tf = client();
  const wf = await tf.getWorkflow(id);
  const tasks = await allPages((q) => tf.listTasks(id, q));
  if (format() !== 'table') return print(format(), { ...wf, tasks }, () => ({ head: [], rows: [] }));
  out(
    fields([
      ['ID', wf.id],
      ['Name', wf.name],
      ['State', wf.state],
      ['Sealed', String(wf.sealed)],
      ['On failure', wf.on_failure],
      ['Tags', wf.tags.join(', ') || '-'],
      ['Tasks', counts(wf.task_counts)],
      ['Created', when(wf.created_at)],
      ['Finished', when(wf.finished_at)],
      ['Input', JSON.stringify(wf.input)],
    ]),
  );
  out('\n');
  print('table', tasks, () => ({
    head: ['ID', 'NAME', 'STATE', 'ATTEMPT', 'TAGS'],
    rows: tasks.map((t) => [t.id, t.name, t.state, String(t.attempt), t.tags.join(',') || '-']),
  }));
});
describe.command('schedule <id>').action(async (id: string) => {
  const tf = client();
  const s = await tf.getSchedule(id);
  if (format() !== 'table') return print(format(), s, () => ({ head: [], rows: [] }));
  out(
    fields([
      ['ID', s.id],
      ['Name', s.name],
      ['Cron', `${s.cron} (${s.timezone})`],
      ['Overlap', s.overlap],
      ['State', s.paused ? (s.paused_reason ?? 'paused') : 'active'],
      ['Next run', when(s.next_run_at)],
      ['Last run', when(s.last_run_at)],
      ['Last workflow', s.last_workflow_id ?? '-'],
    ]),
  );
  out('\n');
  const runs = s.runs ?? [];
  print('table', runs, () => ({
    head: ['TICK', 'OUTCOME', 'WORKFLOW', 'MESSAGE'],
    rows: runs.map((r) => [when(r.tick), r.outcome, r.workflow_id ?? '-', r.message ?? '']),
  }));
});
describe.command('task <id>').action(async (id: string) => {
  const tf = client();
  const t = await tf.getTask(id);
  const events = await tf.taskEvents(id);
  if (format() !== 'table') return print(format(), { ...t, events }, () => ({ head: [], rows: [] }));
  out(
    fields([
      ['ID', t.id],
      ['Name', t.name],
      ['Workflow', t.workflow_id],
      ['State', t.state],
      ['Attempt', String(t.attempt)],
      ['Tags', t.tags.join(', ') || '-'],
      ['Worker', t.worker_id ?? '-'],
      ...(t.not_before ? [['Not before', t.not_before] as [string, string]] : []),
      ['Action', JSON.stringify(t.action)],
      ['Input', JSON.stringify(t.input)],
      ['Resolved input', t.resolved_input ? JSON.stringify(t.resolved_input) : '-'],
      ['Output', t.output ? JSON.stringify(t.output) : '-'],
      ['Error', t.error ? `${t.error.code ?? ''} ${t.error.message}`.trim() : '-'],
      ['Exit code', t.exit_code === null ? '-' : String(t.exit_code)],
    ]),
  );
  out('\n');
  print('table', events, () => ({
    head: ['AT', 'FROM', 'TO', 'ATTEMPT', 'REASON'],
    rows: events.map((e) => [when(e.at), e.from ?? '-', e.to, String(e.attempt), e.reason ?? '']),
  }));
});

// ---- logs ----
program
  .command('logs <task>')
  .description("a task's output (the last 1 MiB per stream); -f follows it as it is written")
  .option('-f, --follow', 'keep printing until the attempt ends')
  .option('--attempt <n>', 'an earlier attempt', positive)
  .addOption(new Option('--stream <stream>', 'one stream only').choices(['stdout', 'stderr']))
  .action(async (id: string, o: { follow?: boolean; attempt?: number; stream?: 'stdout' | 'stderr' }) => {
    const tf = client();
    if (!o.follow) {
      out(await tf.taskLogs(id, { attempt: o.attempt, stream: o.stream }));
      return;
    }
    for await (const piece of tf.followTaskLogs(id, { attempt: o.attempt, stream: o.stream })) {
      if (piece.type === 'chunk') (piece.stream === 'stderr' ? process.stderr : process.stdout).write(piece.text);
    }
  });

// ---- changes ----
for (const [verb, what] of [
  ['cancel', 'a workflow, or a task'],
  ['seal', 'a workflow: no more tasks will be added'],
  ['pause', 'a workflow: nothing new starts'],
  ['resume', 'a paused workflow'],
  ['rerun', 'a task that ended ERROR, in a workflow that is not finished'],
] as const) {
  program
    .command(`${verb} <id>`)
    .description(`${verb} ${what}`)
    .action(async (id: string) => {
      const tf = client();
      const done = await change(tf, verb, id);
      if (format() === 'table') out(`${done.kind} ${id} ${done.state}\n`);
      else print(format(), done.value, () => ({ head: [], rows: [] }));
    });
}

// ---- run ----
program
  .command('run')
  .description('run one command as a task on a worker with these tags; print its output; exit with its exit code')
  .requiredOption('--tags <a,b>', 'tags of the task (a worker whose tags include them all runs it)', (v: string) =>
    v
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
  )
  .option('--timeout <s>', "the task's timeout_s", positive)
  .option('--name <name>', "the task's name")
  .argument('<command...>', 'the command and its arguments (after --)')
  .action(async (command: string[], o: { tags: string[]; timeout?: number; name?: string }) => {
    const tf = client();
    const task = await tf.submitTask({
      name: o.name,
      tags: o.tags,
      timeout_s: o.timeout,
      action: { type: 'shell', command: command.map(shellQuote).join(' ') },
    });
    process.stderr.write(`task ${task.id} submitted\n`);
    // Interrupted: the task is cancelled, so it does not run later when a worker comes back.
    const interrupt = (signal: NodeJS.Signals) => {
      process.stderr.write(`\n${signal}: cancelling task ${task.id}\n`);
      tf.cancelTask(task.id)
        .catch((e: unknown) => process.stderr.write(`could not cancel it: ${(e as Error).message}\n`))
        .finally(() => process.exit(130));
    };
    process.once('SIGINT', interrupt);
    process.once('SIGTERM', interrupt);
    // Nothing after a few seconds: say whether it waits for a worker.
    const notice = setTimeout(() => {
      void tf.getTask(task.id).then(
        (t) => {
          if (t.state === 'READY' || t.state === 'WAITING')
            process.stderr.write(
              `waiting for a worker whose tags include ${o.tags.join(', ')} (Ctrl-C cancels the task)\n`,
            );
        },
        () => undefined,
      );
    }, 5000);
    let current = task;
    try {
      for (let attempt = Math.max(1, task.attempt); ; attempt++) {
        for await (const piece of tf.followTaskLogs(task.id, { attempt })) {
          if (piece.type !== 'chunk') continue;
          clearTimeout(notice);
          (piece.stream === 'stderr' ? process.stderr : process.stdout).write(piece.text);
        }
        current = await tf.getTask(task.id);
        if (isTerminal(current.state)) break;
      }
    } finally {
      clearTimeout(notice);
      process.off('SIGINT', interrupt);
      process.off('SIGTERM', interrupt);
    }
    if (current.state !== 'SUCCESS')
      process.stderr.write(`task ${current.id} ${current.state}${current.error ? `: ${current.error.message}` : ''}\n`);
    // Its exit code when it failed with one; a failure without one (or with 0: its output was refused) is 1.
    process.exitCode = current.state === 'SUCCESS' ? 0 : current.exit_code || 1;
  });

// ---- keys ----
const keys = program.command('keys').description('API keys (admin)');
keys
  .command('create')
  .requiredOption('--name <name>')
  .addOption(new Option('--role <role>').choices(['admin', 'operator', 'reader', 'worker']).makeOptionMandatory())
  .option('--tags <grants>', 'tag grants: tags, prefixes ending in *, or *', (v: string) =>
    v
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
  )
  .option('--key-namespace <ns>', 'the namespace the key acts in')
  .option('--expires-at <iso>')
  .action(async (o: { name: string; role: KeyRole; tags?: string[]; keyNamespace?: string; expiresAt?: string }) => {
    const key = await client().createKey({
      name: o.name,
      role: o.role,
      tags: o.tags,
      namespace: o.keyNamespace,
      expires_at: o.expiresAt,
    });
    if (format() === 'table')
      out(
        `key ${key.id} (${key.name}, ${key.role}, namespace ${key.namespace}); its token, shown once:\n${key.token}\n`,
      );
    else print(format(), key, () => ({ head: [], rows: [] }));
  });
keys.command('list').action(async () => {
  const tf = client();
  const list = await allPages((q) => tf.listKeys(q));
  print(format(), list, () => ({
    head: ['ID', 'NAME', 'ROLE', 'NAMESPACE', 'TAGS', 'EXPIRES', 'REVOKED'],
    rows: list.map((k) => [
      k.id,
      k.name,
      k.role,
      k.namespace,
      k.tags.join(',') || '-',
      when(k.expires_at),
      when(k.revoked_at),
    ]),
  }));
});
keys.command('revoke <id>').action(async (id: string) => {
  await client().revokeKey(id);
  if (format() === 'table') out(`key ${id} revoked\n`);
});

// ---- helpers ----
function positive(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`"${v}" is not a positive whole number`);
  return n;
}

function fields(rows: [string, string][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(w + 2)}${v}\n`).join('');
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Waits for a workflow to finish; on a terminal, a progress line (tasks done / total). */
async function waitForWorkflow(tf: TagflowClient, wf: Workflow, timeoutS?: number): Promise<Workflow> {
  const deadline = Date.now() + (timeoutS ?? Infinity) * 1000;
  const tty = process.stderr.isTTY && format() === 'table';
  let current = wf;
  while (!isTerminalWorkflow(current.state) && Date.now() < deadline) {
    if (tty) {
      const c = current.task_counts ?? {};
      const total = Object.values(c).reduce((a, b) => a + b, 0);
      const done = (c.SUCCESS ?? 0) + (c.ERROR ?? 0) + (c.CANCELLED ?? 0) + (c.SKIPPED ?? 0);
      process.stderr.write(`\r${current.name}: ${done}/${total} tasks done, ${c.RUNNING ?? 0} running   `);
    }
    await new Promise((r) => setTimeout(r, 1000));
    current = await tf.getWorkflow(wf.id);
  }
  if (tty) process.stderr.write('\n');
  return current;
}

/** cancel, seal, pause, resume a workflow; cancel or rerun a task. An id is tried as a workflow first (cancel). */
async function change(
  tf: TagflowClient,
  verb: 'cancel' | 'seal' | 'pause' | 'resume' | 'rerun',
  id: string,
): Promise<{ kind: string; state: string; value: unknown }> {
  if (verb === 'rerun') {
    const t = await tf.rerunTask(id);
    return { kind: 'task', state: t.state, value: t };
  }
  if (verb === 'cancel') {
    try {
      const wf = await tf.cancelWorkflow(id);
      return { kind: 'workflow', state: wf.state, value: wf };
    } catch (e) {
      if (!(e instanceof TagflowApiError && e.status === 404)) throw e;
      const t = await tf.cancelTask(id);
      return {
        kind: 'task',
        state: t.state + (t.cancel_requested && t.state === 'RUNNING' ? ' (cancel requested)' : ''),
        value: t,
      };
    }
  }
  const wf = await (verb === 'seal'
    ? tf.sealWorkflow(id)
    : verb === 'pause'
      ? tf.pauseWorkflow(id)
      : tf.resumeWorkflow(id));
  return { kind: 'workflow', state: wf.state, value: wf };
}

// Commander's own errors (a missing or unknown flag, a bad choice) are usage errors: exit 2.
program.exitOverride();
for (const sub of program.commands) sub.exitOverride();

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof CommanderError) {
    process.exitCode =
      e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : 2;
  } else if (e instanceof WorkflowFileError) {
    process.stderr.write(`${e.message}\n`);
    process.exitCode = 2;
  } else if (e instanceof UsageError) {
    process.stderr.write(`tagflow: ${e.message}\n`);
    process.exitCode = 2;
  } else if (e instanceof TagflowApiError || e instanceof TagflowNetworkError) {
    process.stderr.write(`tagflow: ${e.message}${e instanceof TagflowApiError ? ` (HTTP ${e.status})` : ''}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`tagflow: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
});
