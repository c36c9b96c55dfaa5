import { TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * ix_task_tag_workflow (workflow_id, tag) is a prefix of ix_task_tag_members
 * (workflow_id, tag, task_id): every lookup it served, the longer one serves, and each
 * tag of each new task paid for keeping both.
 */
export class DropRedundantTagIndex1700000000003 implements MigrationInterface {
  name = 'DropRedundantTagIndex1700000000003';

  async up(q: QueryRunner): Promise<void> {
    await q.dropIndex('task_tag', 'ix_task_tag_workflow');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.createIndex(
      'task_tag',
      new TableIndex({ name: 'ix_task_tag_workflow', columnNames: ['workflow_id', 'tag'] }),
    );
  }
}
