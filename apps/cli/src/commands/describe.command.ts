import type { Command } from 'commander';
import { allPages } from '@tagflow/client';
import { counts, out, print, when } from '../output.js';
import type { GlobalOptions } from './global-options.js';

/** `tagflow describe ...`: one workflow, schedule or task in full, with its tasks, runs or events. */
export function addDescribeCommands(program: Command, { client, format }: GlobalOptions): void {
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
}

/** `Label:  value` lines, the values lined up. */
function fields(rows: [string, string][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(w + 2)}${v}\n`).join('');
}
