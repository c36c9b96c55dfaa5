import type { Command } from 'commander';
import { TagflowApiError, type TagflowClient, type Workflow } from '@tagflow/client';
import { isTerminalWorkflow } from '@tagflow/domain';
import { UsageError } from '../config.js';
import { counts, out, print, type Format } from '../output.js';
import { loadWorkflowFile } from '../workflow-file.js';
import { positive, type GlobalOptions } from './global-options.js';

/** `tagflow apply -f FILE`: a workflow from a file, checked here first; `--wait` follows it to its end. */
export function addApplyCommand(program: Command, { client, format }: GlobalOptions): void {
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
        wf = await waitForWorkflow(tf, wf, format, o.timeout);
        if (format() === 'table') out(`workflow ${wf.id} ${wf.state}: ${counts(wf.task_counts)}\n`);
        else print(format(), wf, () => ({ head: [], rows: [] }));
        process.exitCode = wf.state === 'SUCCESS' ? 0 : !isTerminalWorkflow(wf.state) ? 124 : 1;
      } else if (format() !== 'table') {
        print(format(), wf, () => ({ head: [], rows: [] }));
      }
    });
}

/** Waits for a workflow to finish; on a terminal, a progress line (tasks done / total). */
async function waitForWorkflow(
  tf: TagflowClient,
  wf: Workflow,
  format: () => Format,
  timeoutS?: number,
): Promise<Workflow> {
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
