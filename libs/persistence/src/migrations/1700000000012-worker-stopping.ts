import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/** When a worker handed a task back as it stopped: it may not poll again under that id. */
export class WorkerStopping1700000000012 implements MigrationInterface {
  name = 'WorkerStopping1700000000012';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('worker', new TableColumn({ name: 'stopping_at', type: 'bigint', isNullable: true }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('worker', 'stopping_at');
  }
}
