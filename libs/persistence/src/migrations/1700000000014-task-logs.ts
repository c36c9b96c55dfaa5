import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Live output of running attempts; the workflow event stream reads task events by workflow. */
export class TaskLogs1700000000014 implements MigrationInterface {
  name = 'TaskLogs1700000000014';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'task_log',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'task_id', type: 'varchar', length: '36' },
          { name: 'workflow_id', type: 'varchar', length: '36' },
          { name: 'attempt', type: 'integer' },
          { name: 'stream', type: 'varchar', length: '8' },
          { name: 'data', type: 'text' },
          { name: 'bytes', type: 'integer' },
          { name: 'end_offset', type: 'bigint' },
          { name: 'at', type: 'bigint' },
        ],
        indices: [
          new TableIndex({ name: 'ix_task_log_attempt', columnNames: ['task_id', 'attempt', 'id'] }),
          new TableIndex({ name: 'ix_task_log_workflow', columnNames: ['workflow_id'] }),
        ],
      }),
    );
    await q.createIndex(
      'task_event',
      new TableIndex({ name: 'ix_task_event_workflow', columnNames: ['workflow_id', 'id'] }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('task_event', 'ix_task_event_workflow');
    await q.dropTable('task_log');
  }
}
