import { Table, TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/** The per-workflow data space, and what each task reads from and writes to it. */
export class DataSpace1700000000001 implements MigrationInterface {
  name = 'DataSpace1700000000001';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumns('task', [
      new TableColumn({ name: 'produces', type: 'text', isNullable: false, default: "'[]'" }),
      new TableColumn({ name: 'data_requires', type: 'text', isNullable: false, default: "'[]'" }),
    ]);
    await q.createTable(
      new Table({
        name: 'data_entry',
        columns: [
          { name: 'workflow_id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'key', type: 'varchar', length: '128', isPrimary: true },
          { name: 'value', type: 'text', isNullable: false },
          { name: 'written_at', type: 'bigint', isNullable: false },
          { name: 'task_id', type: 'varchar', length: '36', isNullable: true },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('data_entry');
    await q.dropColumn('task', 'data_requires');
    await q.dropColumn('task', 'produces');
  }
}
