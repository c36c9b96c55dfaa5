import { Table, TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** The audit log of state-changing requests, and who made each workflow and task. */
export class Audit1700000000006 implements MigrationInterface {
  name = 'Audit1700000000006';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'audit',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'at', type: 'bigint' },
          { name: 'key_id', type: 'varchar', length: '36', isNullable: true },
          { name: 'key_name', type: 'varchar', length: '128' },
          { name: 'namespace', type: 'varchar', length: '63' },
          { name: 'method', type: 'varchar', length: '8' },
          { name: 'path', type: 'varchar', length: '512' },
          { name: 'status', type: 'integer' },
          { name: 'resource_id', type: 'varchar', length: '36', isNullable: true },
        ],
        indices: [new TableIndex({ name: 'ix_audit_at', columnNames: ['at'] })],
      }),
    );
    await q.addColumn('workflow', new TableColumn({ name: 'created_by', type: 'text', isNullable: true }));
    await q.addColumn('task', new TableColumn({ name: 'created_by', type: 'text', isNullable: true }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('task', 'created_by');
    await q.dropColumn('workflow', 'created_by');
    await q.dropTable('audit');
  }
}
