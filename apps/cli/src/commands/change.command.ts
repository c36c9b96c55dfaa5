import type { Command } from 'commander';
import { TagflowApiError, type TagflowClient } from '@tagflow/client';
import { out, print } from '../output.js';
import type { GlobalOptions } from './global-options.js';

/** `tagflow cancel|seal|pause|resume|rerun ID`: one change to a workflow or a task. */
export function addChangeCommands(program: Command, { client, format }: GlobalOptions): void {
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
