import { Table, TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * - task.resolved_input: the input a worker received for the current attempt, its
 *   references replaced (NULL when the input has none: then it is the input itself).
 * - workflow_event: every change of a workflow's state or flags, with its time, as
 *   task_event is for tasks.
 */
export class ResolvedInputAndWorkflowEvents1700000000004 implements MigrationInterface {
  name = 'ResolvedInputAndWorkflowEvents1700000000004';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('task', new TableColumn({ name: 'resolved_input', type: 'text', isNullable: true }));
    await q.createTable(
      new Table({
        name: 'workflow_event',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'workflow_id', type: 'varchar', length: '36' },
          { name: 'from_state', type: 'varchar', length: '16' },
          { name: 'to_state', type: 'varchar', length: '16' },
          { name: 'reason', type: 'text', isNullable: true },
          { name: 'at', type: 'bigint' },
        ],
        indices: [new TableIndex({ name: 'ix_workflow_event_workflow', columnNames: ['workflow_id', 'id'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('workflow_event');
    await q.dropColumn('task', 'resolved_input');
  }
}
