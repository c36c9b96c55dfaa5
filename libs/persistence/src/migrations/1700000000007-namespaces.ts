import { TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

const NAMESPACED = ['workflow', 'task', 'worker'] as const;

/**
 * Every workflow, task and worker lives in a namespace; rows made before namespaces
 * existed are the `default` namespace's. Lists of workflows and workers are read per
 * namespace, newest first, through the new indexes.
 */
export class Namespaces1700000000007 implements MigrationInterface {
  name = 'Namespaces1700000000007';

  async up(q: QueryRunner): Promise<void> {
    for (const table of NAMESPACED) {
      await q.addColumn(
        table,
        new TableColumn({ name: 'namespace', type: 'varchar', length: '63', default: "'default'" }),
      );
    }
    await q.createIndex(
      'workflow',
      new TableIndex({ name: 'ix_workflow_ns_created', columnNames: ['namespace', 'created_at', 'id'] }),
    );
    await q.createIndex(
      'worker',
      new TableIndex({ name: 'ix_worker_ns_created', columnNames: ['namespace', 'created_at', 'id'] }),
    );
    await q.createIndex('audit', new TableIndex({ name: 'ix_audit_ns_id', columnNames: ['namespace', 'id'] }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('audit', 'ix_audit_ns_id');
    await q.dropIndex('worker', 'ix_worker_ns_created');
    await q.dropIndex('workflow', 'ix_workflow_ns_created');
    for (const table of NAMESPACED) await q.dropColumn(table, 'namespace');
  }
}
