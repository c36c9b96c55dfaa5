import { TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** A workflow whose waiting tasks are still being evaluated in later transactions (a large cascade). */
export class SettlePending1700000000011 implements MigrationInterface {
  name = 'SettlePending1700000000011';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('workflow', new TableColumn({ name: 'settle_pending', type: 'boolean', default: false }));
    await q.createIndex(
      'workflow',
      new TableIndex({ name: 'ix_workflow_settle_pending', columnNames: ['settle_pending'] }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('workflow', 'ix_workflow_settle_pending');
    await q.dropColumn('workflow', 'settle_pending');
  }
}
