import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** API keys: the credentials of people, programs and workers (only the token's hash is stored). */
export class ApiKeys1700000000005 implements MigrationInterface {
  name = 'ApiKeys1700000000005';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'api_key',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'name', type: 'varchar', length: '128' },
          { name: 'role', type: 'varchar', length: '16' },
          { name: 'namespace', type: 'varchar', length: '63' },
          { name: 'tags', type: 'text' },
          { name: 'token_hash', type: 'varchar', length: '64' },
          { name: 'created_at', type: 'bigint' },
          { name: 'expires_at', type: 'bigint', isNullable: true },
          { name: 'revoked_at', type: 'bigint', isNullable: true },
        ],
        uniques: [{ name: 'uq_api_key_token_hash', columnNames: ['token_hash'] }],
        indices: [new TableIndex({ name: 'ix_api_key_created', columnNames: ['created_at', 'id'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('api_key');
  }
}
