import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Answers of creating requests sent with an Idempotency-Key, per credential, kept a day. */
export class Idempotency1700000000009 implements MigrationInterface {
  name = 'Idempotency1700000000009';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'idempotency',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'owner', type: 'varchar', length: '64' },
          { name: 'key', type: 'varchar', length: '255' },
          { name: 'request_hash', type: 'varchar', length: '64' },
          { name: 'status', type: 'integer', isNullable: true },
          { name: 'response', type: 'text', isNullable: true },
          { name: 'created_at', type: 'bigint' },
        ],
        indices: [
          new TableIndex({ name: 'ux_idempotency_owner_key', columnNames: ['owner', 'key'], isUnique: true }),
          new TableIndex({ name: 'ix_idempotency_created', columnNames: ['created_at'] }),
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('idempotency');
  }
}
