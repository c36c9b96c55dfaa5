import { Table, TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Concurrency limits: at most `max_running` RUNNING tasks carrying `tag`, in a namespace
 * (`workflow_id` '') or within one workflow. `held_limit` on a READY task names the limit
 * that kept it from being leased (`<workflow id or ''>|<tag>`): such a task has no job in
 * Redis until that limit has room again. `limits` on a workflow: the per-workflow limits it
 * was created with, as given.
 */
export class ConcurrencyLimits1700000000018 implements MigrationInterface {
  name = 'ConcurrencyLimits1700000000018';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'concurrency_limit',
        columns: [
          { name: 'namespace', type: 'varchar', length: '63', isPrimary: true },
          { name: 'workflow_id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'tag', type: 'varchar', length: '64', isPrimary: true },
          { name: 'max_running', type: 'integer' },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
        ],
        indices: [new TableIndex({ name: 'ix_concurrency_limit_workflow', columnNames: ['workflow_id'] })],
      }),
    );
    await q.addColumn(
      'task',
      new TableColumn({ name: 'held_limit', type: 'varchar', length: '101', isNullable: true }),
    );
    await q.createIndex(
      'task',
      new TableIndex({ name: 'ix_task_held', columnNames: ['held_limit'], where: 'held_limit IS NOT NULL' }),
    );
    await q.addColumn(
      'workflow',
      new TableColumn({ name: 'limits', type: 'text', isNullable: false, default: "'{}'" }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('workflow', 'limits');
    await q.dropIndex('task', 'ix_task_held');
    await q.dropColumn('task', 'held_limit');
    await q.dropTable('concurrency_limit');
  }
}
