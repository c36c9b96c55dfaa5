import type { Command } from 'commander';
import { allPages, type Task, type Workflow } from '@tagflow/client';
import { counts, print, when } from '../output.js';
import { positive, type GlobalOptions } from './global-options.js';

/** `tagflow get ...`: lists, as tables for people or JSON/YAML for scripts. */
export function addGetCommands(program: Command, { client, format }: GlobalOptions): void {
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
}
