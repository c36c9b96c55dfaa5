import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/** A task's priority (-100..100, default 0): higher first among ready tasks a poll fits. */
export class Priority1700000000017 implements MigrationInterface {
  name = 'Priority1700000000017';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('task', new TableColumn({ name: 'priority', type: 'integer', isNullable: false, default: 0 }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('task', 'priority');
  }
}
