import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/** The key that registered a worker: only that key may poll under its id. */
export class WorkerKey1700000000013 implements MigrationInterface {
  name = 'WorkerKey1700000000013';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('worker', new TableColumn({ name: 'key_id', type: 'varchar', length: '36', isNullable: true }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('worker', 'key_id');
  }
}
