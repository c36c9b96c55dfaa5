import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/** How many attempts of a task its workers gave back while stopping (free of the retry budget up to a bound). */
export class Handbacks1700000000008 implements MigrationInterface {
  name = 'Handbacks1700000000008';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('task', new TableColumn({ name: 'handbacks', type: 'integer', default: 0 }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('task', 'handbacks');
  }
}
