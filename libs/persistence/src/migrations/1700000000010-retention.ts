import { TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** How long a finished workflow is kept (null: RETENTION_DAYS), and the index the deletion walks. */
export class Retention1700000000010 implements MigrationInterface {
  name = 'Retention1700000000010';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('workflow', new TableColumn({ name: 'retention_days', type: 'integer', isNullable: true }));
    await q.createIndex('workflow', new TableIndex({ name: 'ix_workflow_finished', columnNames: ['finished_at'] }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('workflow', 'ix_workflow_finished');
    await q.dropColumn('workflow', 'retention_days');
  }
}
