import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Where a workflow's continuation is in its walk through the waiting tasks (the last id
 * evaluated; '' for the start). Kept in the row, not in an API's memory, so every replica
 * continues one walk, and a release that leaves evaluations for later sets it back to the
 * start under the workflow's lock: the mark is cleared only by a walk begun after the last
 * such release.
 */
export class SettleCursor1700000000021 implements MigrationInterface {
  name = 'SettleCursor1700000000021';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'workflow',
      new TableColumn({ name: 'settle_after', type: 'varchar', length: '36', default: "''" }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('workflow', 'settle_after');
  }
}
