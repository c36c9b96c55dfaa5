import type { Command } from 'commander';
import { isTerminal } from '@tagflow/client';
import { positive, type GlobalOptions } from './global-options.js';

/** `tagflow run --tags T -- CMD...`: one command as a task, its output here, its exit code ours. */
export function addRunCommand(program: Command, { client }: GlobalOptions): void {
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
        process.stderr.write(
          `task ${current.id} ${current.state}${current.error ? `: ${current.error.message}` : ''}\n`,
        );
      // Its exit code when it failed with one; a failure without one (or with 0: its output was refused) is 1.
      process.exitCode = current.state === 'SUCCESS' ? 0 : current.exit_code || 1;
    });
}

/** An argument as sh reads it back: quoted only when it must be, so the task's command reads as typed. */
function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
