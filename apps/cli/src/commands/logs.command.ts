import { Option, type Command } from 'commander';
import { out } from '../output.js';
import { positive, type GlobalOptions } from './global-options.js';

/** `tagflow logs TASK`: a task's output as kept, or followed while it is written. */
export function addLogsCommand(program: Command, { client }: GlobalOptions): void {
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
}
