import { TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Tag members in task order, so "is any member of this tag still open?" can look at the
 * newest members first: tasks finish roughly oldest first, so an open one is found at
 * once instead of after every finished one (which made a large tag group quadratic).
 */
export class TagMemberOrder1700000000002 implements MigrationInterface {
  name = 'TagMemberOrder1700000000002';

  async up(q: QueryRunner): Promise<void> {
    await q.createIndex(
      'task_tag',
      new TableIndex({ name: 'ix_task_tag_members', columnNames: ['workflow_id', 'tag', 'task_id'] }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('task_tag', 'ix_task_tag_members');
  }
}
