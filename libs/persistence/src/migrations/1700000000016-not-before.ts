import { TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * `not_before`: a task is not READY before then, even when its dependencies are met.
 * `wake_at`: set when that time alone holds a waiting task; the reconciler finds such tasks
 * by it once the time has come (on any replica, after any restart) and evaluates them again.
 */
export class NotBefore1700000000016 implements MigrationInterface {
  name = 'NotBefore1700000000016';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('task', new TableColumn({ name: 'not_before', type: 'bigint', isNullable: true }));
    await q.addColumn('task', new TableColumn({ name: 'wake_at', type: 'bigint', isNullable: true }));
    await q.createIndex(
      'task',
      new TableIndex({ name: 'ix_task_wake', columnNames: ['wake_at'], where: 'wake_at IS NOT NULL' }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('task', 'ix_task_wake');
    await q.dropColumn('task', 'wake_at');
    await q.dropColumn('task', 'not_before');
  }
}
