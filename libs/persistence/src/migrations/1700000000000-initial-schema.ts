import { Table, TableIndex, type MigrationInterface, type QueryRunner, type TableColumnOptions } from 'typeorm';

/**
 * The first schema. Written with TypeORM's Table API so the same migration runs on
 * SQLite and PostgreSQL; column types are the ones both understand.
 */
const id = (name: string, primary = false): TableColumnOptions => ({
  name,
  type: 'varchar',
  length: '36',
  isPrimary: primary,
});
const str = (name: string, length: number, nullable = false): TableColumnOptions => ({
  name,
  type: 'varchar',
  length: String(length),
  isNullable: nullable,
});
const text = (name: string, nullable = true): TableColumnOptions => ({ name, type: 'text', isNullable: nullable });
const ms = (name: string, nullable = true): TableColumnOptions => ({ name, type: 'bigint', isNullable: nullable });
const int = (name: string, nullable = false): TableColumnOptions => ({ name, type: 'integer', isNullable: nullable });
const bool = (name: string): TableColumnOptions => ({ name, type: 'boolean', isNullable: false, default: false });

export class InitialSchema1700000000000 implements MigrationInterface {
  name = 'InitialSchema1700000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'workflow',
        columns: [
          id('id', true),
          str('name', 128),
          text('description'),
          text('tags', false),
          text('input', false),
          str('state', 16),
          bool('sealed'),
          str('on_failure', 16),
          bool('rollback_started'),
          ms('created_at', false),
          ms('updated_at', false),
          ms('finished_at'),
        ],
        indices: [
          new TableIndex({ name: 'ix_workflow_created', columnNames: ['created_at', 'id'] }),
          new TableIndex({ name: 'ix_workflow_state', columnNames: ['state', 'created_at'] }),
          new TableIndex({ name: 'ix_workflow_name', columnNames: ['name'] }),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'workflow_tag',
        columns: [id('workflow_id', true), { ...str('tag', 64), isPrimary: true }],
        indices: [new TableIndex({ name: 'ix_workflow_tag_tag', columnNames: ['tag', 'workflow_id'] })],
      }),
    );
    await q.createTable(
      new Table({
        name: 'task',
        columns: [
          id('id', true),
          id('workflow_id'),
          str('name', 128),
          str('kind', 16),
          { ...id('parent_task_id'), isNullable: true },
          text('tags', false),
          str('tagset_id', 32),
          text('action', false),
          text('input', false),
          text('requires', false),
          text('requires_tags', false),
          text('retry', false),
          int('timeout_s', true),
          int('lease_s'),
          text('on_error', false),
          text('revert'),
          str('state', 16),
          int('attempt'),
          bool('handled'),
          bool('handling'),
          bool('cancel_requested'),
          text('output'),
          text('error'),
          text('stdout'),
          text('stderr'),
          int('exit_code', true),
          text('progress'),
          { ...id('worker_id'), isNullable: true },
          str('lease_token', 64, true),
          ms('lease_expires_at'),
          ms('deadline_at'),
          str('lease_outcome', 16, true),
          ms('created_at', false),
          ms('updated_at', false),
          ms('ready_at'),
          ms('started_at'),
          ms('finished_at'),
        ],
        uniques: [{ name: 'uq_task_workflow_name', columnNames: ['workflow_id', 'name'] }],
        indices: [
          new TableIndex({ name: 'ix_task_workflow_state', columnNames: ['workflow_id', 'state'] }),
          new TableIndex({ name: 'ix_task_workflow_created', columnNames: ['workflow_id', 'created_at', 'id'] }),
          new TableIndex({ name: 'ix_task_state_ready', columnNames: ['state', 'ready_at'] }),
          new TableIndex({ name: 'ix_task_state_lease', columnNames: ['state', 'lease_expires_at'] }),
          new TableIndex({ name: 'ix_task_worker', columnNames: ['worker_id', 'state'] }),
          new TableIndex({ name: 'ix_task_parent', columnNames: ['parent_task_id'] }),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'task_tag',
        columns: [id('task_id', true), { ...str('tag', 64), isPrimary: true }, id('workflow_id')],
        indices: [new TableIndex({ name: 'ix_task_tag_workflow', columnNames: ['workflow_id', 'tag'] })],
      }),
    );
    await q.createTable(
      new Table({
        name: 'task_dep',
        columns: [
          id('task_id', true),
          { ...str('kind', 8), isPrimary: true },
          { ...str('dep_key', 128), isPrimary: true },
          id('workflow_id'),
        ],
        indices: [new TableIndex({ name: 'ix_task_dep_lookup', columnNames: ['workflow_id', 'kind', 'dep_key'] })],
      }),
    );
    await q.createTable(
      new Table({
        name: 'reserved_name',
        columns: [id('workflow_id', true), { ...str('name', 128), isPrimary: true }, id('owner_task_id')],
      }),
    );
    await q.createTable(
      new Table({
        name: 'task_event',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          id('task_id'),
          id('workflow_id'),
          str('from_state', 16, true),
          str('to_state', 16),
          int('attempt'),
          text('reason'),
          ms('at', false),
        ],
        indices: [new TableIndex({ name: 'ix_task_event_task', columnNames: ['task_id', 'id'] })],
      }),
    );
    await q.createTable(
      new Table({
        name: 'worker',
        columns: [
          id('id', true),
          str('name', 128),
          text('tags', false),
          str('hostname', 255, true),
          str('version', 64, true),
          ms('created_at', false),
          ms('last_seen_at', false),
        ],
        indices: [new TableIndex({ name: 'ix_worker_created', columnNames: ['created_at', 'id'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of [
      'worker',
      'task_event',
      'reserved_name',
      'task_dep',
      'task_tag',
      'task',
      'workflow_tag',
      'workflow',
    ]) {
      await q.dropTable(table);
    }
  }
}
