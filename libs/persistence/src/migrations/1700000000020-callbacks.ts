import { Table, TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Signed callbacks. `callback` on a workflow or a task: `{url, secret?}`. `callback_delivery`
 * is the outbox: one row per finish to announce, written in the transaction that finished
 * it (`dedupe_key` makes a second write of the same finish a no-op), delivered and retried
 * by the API's dispatcher until the receiver answers 2xx or the delivery gives up.
 */
export class Callbacks1700000000020 implements MigrationInterface {
  name = 'Callbacks1700000000020';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('workflow', new TableColumn({ name: 'callback', type: 'text', isNullable: true }));
    await q.addColumn('task', new TableColumn({ name: 'callback', type: 'text', isNullable: true }));
    await q.createTable(
      new Table({
        name: 'callback_delivery',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'dedupe_key', type: 'varchar', length: '160' },
          { name: 'namespace', type: 'varchar', length: '63' },
          { name: 'workflow_id', type: 'varchar', length: '36' },
          { name: 'task_id', type: 'varchar', length: '36', isNullable: true },
          { name: 'event', type: 'varchar', length: '32' },
          { name: 'url', type: 'text' },
          { name: 'secret', type: 'text', isNullable: true },
          { name: 'body', type: 'text' },
          { name: 'state', type: 'varchar', length: '16' },
          { name: 'attempts', type: 'integer', default: 0 },
          { name: 'next_attempt_at', type: 'bigint' },
          { name: 'last_status', type: 'integer', isNullable: true },
          { name: 'last_error', type: 'text', isNullable: true },
          { name: 'history', type: 'text' },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
          { name: 'delivered_at', type: 'bigint', isNullable: true },
        ],
        indices: [
          new TableIndex({ name: 'ux_callback_dedupe', columnNames: ['dedupe_key'], isUnique: true }),
          new TableIndex({ name: 'ix_callback_due', columnNames: ['state', 'next_attempt_at'] }),
          new TableIndex({ name: 'ix_callback_workflow', columnNames: ['workflow_id', 'created_at'] }),
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('callback_delivery');
    await q.dropColumn('task', 'callback');
    await q.dropColumn('workflow', 'callback');
  }
}
