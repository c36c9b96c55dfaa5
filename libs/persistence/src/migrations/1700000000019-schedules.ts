import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Schedules: a workflow spec created on each tick of a cron expression. `schedule_run` has
 * one row per (schedule, tick): inserting it is how exactly one replica gets to act on a tick.
 */
export class Schedules1700000000019 implements MigrationInterface {
  name = 'Schedules1700000000019';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'schedule',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'namespace', type: 'varchar', length: '63' },
          { name: 'name', type: 'varchar', length: '128' },
          { name: 'cron', type: 'varchar', length: '128' },
          { name: 'timezone', type: 'varchar', length: '64' },
          { name: 'overlap', type: 'varchar', length: '8' },
          { name: 'workflow', type: 'text' },
          { name: 'paused', type: 'boolean', default: false },
          { name: 'next_run_at', type: 'bigint', isNullable: true },
          { name: 'last_run_at', type: 'bigint', isNullable: true },
          { name: 'last_workflow_id', type: 'varchar', length: '36', isNullable: true },
          { name: 'created_by', type: 'text', isNullable: true },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
        ],
        indices: [
          new TableIndex({ name: 'ux_schedule_name', columnNames: ['namespace', 'name'], isUnique: true }),
          new TableIndex({ name: 'ix_schedule_due', columnNames: ['next_run_at'] }),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'schedule_run',
        columns: [
          { name: 'schedule_id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'tick', type: 'bigint', isPrimary: true },
          { name: 'outcome', type: 'varchar', length: '16' },
          { name: 'workflow_id', type: 'varchar', length: '36', isNullable: true },
          { name: 'message', type: 'text', isNullable: true },
          { name: 'at', type: 'bigint' },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('schedule_run');
    await q.dropTable('schedule');
  }
}
