import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Every tag a task of a workflow runs on, its on_error handlers included ('' for an
 * untagged task, which runs on any worker): what an operator's tag grants must cover to
 * change the workflow as a whole (add tasks, seal, cancel, pause, resume, rerun, write its
 * data). Written as tasks are added; kept with the workflow. Existing workflows are filled
 * in from their tasks.
 */
export class WorkflowRunTags1700000000022 implements MigrationInterface {
  name = 'WorkflowRunTags1700000000022';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'workflow_run_tag',
        columns: [
          { name: 'workflow_id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'tag', type: 'varchar', length: '64', isPrimary: true },
        ],
      }),
    );
    await q.query('INSERT INTO workflow_run_tag (workflow_id, tag) SELECT DISTINCT workflow_id, tag FROM task_tag');
    await q.query(
      `INSERT INTO workflow_run_tag (workflow_id, tag) SELECT DISTINCT workflow_id, '' FROM task WHERE tags = '[]'`,
    );
    const rows = (await q.query(`SELECT workflow_id, on_error FROM task WHERE on_error <> '[]'`)) as {
      workflow_id: string;
      on_error: string;
    }[];
    const handlerTags = new Set<string>();
    for (const r of rows)
      for (const tag of specTags(JSON.parse(r.on_error) as unknown)) handlerTags.add(`${r.workflow_id}\n${tag}`);
    for (const pair of handlerTags) {
      const [workflowId, tag] = pair.split('\n');
      await q.query(
        `INSERT INTO workflow_run_tag (workflow_id, tag) VALUES (${param(q, 1)}, ${param(q, 2)}) ON CONFLICT (workflow_id, tag) DO NOTHING`,
        [workflowId, tag],
      );
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('workflow_run_tag');
  }
}

/** Tags of the handler specs in an on_error list, nested handlers included ('' for an untagged one). */
function specTags(onError: unknown): string[] {
  const out: string[] = [];
  for (const entry of Array.isArray(onError) ? onError : []) {
    for (const spec of Array.isArray((entry as { run?: unknown }).run) ? (entry as { run: unknown[] }).run : []) {
      const tags = (spec as { tags?: unknown }).tags;
      if (Array.isArray(tags) && tags.length > 0) out.push(...tags.map(String));
      else out.push('');
      out.push(...specTags((spec as { on_error?: unknown }).on_error));
    }
  }
  return out;
}

function param(q: QueryRunner, n: number): string {
  return q.connection.options.type === 'postgres' ? `$${n}` : '?';
}
