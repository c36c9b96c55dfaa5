import { TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * A schedule acts with its owner's key (the key that created or last resumed it): when that
 * key is revoked or expires the schedule is paused, with the reason kept in `paused_reason`.
 * `owner_key_id` is filled in from `created_by` for existing schedules.
 */
export class ScheduleOwner1700000000023 implements MigrationInterface {
  name = 'ScheduleOwner1700000000023';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'schedule',
      new TableColumn({ name: 'owner_key_id', type: 'varchar', length: '36', isNullable: true }),
    );
    await q.addColumn('schedule', new TableColumn({ name: 'paused_reason', type: 'text', isNullable: true }));
    await q.createIndex('schedule', new TableIndex({ name: 'ix_schedule_owner', columnNames: ['owner_key_id'] }));
    const rows = (await q.query('SELECT id, created_by FROM schedule WHERE created_by IS NOT NULL')) as {
      id: string;
      created_by: string;
    }[];
    const pg = q.connection.options.type === 'postgres';
    for (const r of rows) {
      const keyId = (JSON.parse(r.created_by) as { key_id?: string | null }).key_id ?? null;
      if (keyId)
        await q.query(`UPDATE schedule SET owner_key_id = ${pg ? '$1' : '?'} WHERE id = ${pg ? '$2' : '?'}`, [
          keyId,
          r.id,
        ]);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('schedule', 'ix_schedule_owner');
    await q.dropColumn('schedule', 'paused_reason');
    await q.dropColumn('schedule', 'owner_key_id');
  }
}
