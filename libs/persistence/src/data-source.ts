import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DataSource, type DataSourceOptions } from 'typeorm';
import {
  TaskDepEntity,
  TaskEntity,
  TaskEventEntity,
  TaskTagEntity,
  ReservedNameEntity,
} from './entities/task.entity.js';
import { WorkflowEntity, WorkflowEventEntity, WorkflowTagEntity } from './entities/workflow.entity.js';
import { WorkerEntity } from './entities/worker.entity.js';
import { InitialSchema1700000000000 } from './migrations/1700000000000-initial-schema.js';
import { DataSpace1700000000001 } from './migrations/1700000000001-data-space.js';
import { TagMemberOrder1700000000002 } from './migrations/1700000000002-tag-member-order.js';
import { DropRedundantTagIndex1700000000003 } from './migrations/1700000000003-drop-redundant-tag-index.js';
import { ResolvedInputAndWorkflowEvents1700000000004 } from './migrations/1700000000004-resolved-input-and-workflow-events.js';
import { ApiKeys1700000000005 } from './migrations/1700000000005-api-keys.js';
import { Audit1700000000006 } from './migrations/1700000000006-audit.js';
import { Namespaces1700000000007 } from './migrations/1700000000007-namespaces.js';
import { Handbacks1700000000008 } from './migrations/1700000000008-handbacks.js';
import { Idempotency1700000000009 } from './migrations/1700000000009-idempotency.js';
import { Retention1700000000010 } from './migrations/1700000000010-retention.js';
import { SettlePending1700000000011 } from './migrations/1700000000011-settle-pending.js';
import { WorkerStopping1700000000012 } from './migrations/1700000000012-worker-stopping.js';
import { WorkerKey1700000000013 } from './migrations/1700000000013-worker-key.js';
import { TaskLogs1700000000014 } from './migrations/1700000000014-task-logs.js';
import { EventStreamOrder1700000000015 } from './migrations/1700000000015-event-stream-order.js';
import { NotBefore1700000000016 } from './migrations/1700000000016-not-before.js';
import { Priority1700000000017 } from './migrations/1700000000017-priority.js';
import { ConcurrencyLimits1700000000018 } from './migrations/1700000000018-concurrency-limits.js';
import { Schedules1700000000019 } from './migrations/1700000000019-schedules.js';
import { Callbacks1700000000020 } from './migrations/1700000000020-callbacks.js';
import { SettleCursor1700000000021 } from './migrations/1700000000021-settle-cursor.js';
import { WorkflowRunTags1700000000022 } from './migrations/1700000000022-workflow-run-tags.js';
import { ScheduleOwner1700000000023 } from './migrations/1700000000023-schedule-owner.js';
import { WideIds1700000000024 } from './migrations/1700000000024-wide-ids.js';
import { TaskLogEntity } from './entities/task-log.entity.js';
import { prepareStatementsOf } from './prepared.js';
import { shareResultColumns } from './result-columns.js';
import { AuditEntity } from './entities/audit.entity.js';
import { ApiKeyEntity } from './entities/api-key.entity.js';
import { DataEntryEntity } from './entities/data-entry.entity.js';

export const ENTITIES = [
  WorkflowEntity,
  WorkflowTagEntity,
  TaskEntity,
  TaskTagEntity,
  TaskDepEntity,
  ReservedNameEntity,
  TaskEventEntity,
  WorkflowEventEntity,
  WorkerEntity,
  DataEntryEntity,
  ApiKeyEntity,
  AuditEntity,
  TaskLogEntity,
];
export const MIGRATIONS = [
  InitialSchema1700000000000,
  DataSpace1700000000001,
  TagMemberOrder1700000000002,
  DropRedundantTagIndex1700000000003,
  ResolvedInputAndWorkflowEvents1700000000004,
  ApiKeys1700000000005,
  Audit1700000000006,
  Namespaces1700000000007,
  Handbacks1700000000008,
  Idempotency1700000000009,
  Retention1700000000010,
  SettlePending1700000000011,
  WorkerStopping1700000000012,
  WorkerKey1700000000013,
  TaskLogs1700000000014,
  EventStreamOrder1700000000015,
  NotBefore1700000000016,
  Priority1700000000017,
  ConcurrencyLimits1700000000018,
  Schedules1700000000019,
  Callbacks1700000000020,
  SettleCursor1700000000021,
  WorkflowRunTags1700000000022,
  ScheduleOwner1700000000023,
  WideIds1700000000024,
];

export type DatabaseKind = 'sqlite' | 'postgres';

/** `sqlite:./data/tagflow.db`, `sqlite::memory:` or `postgres://user:pass@host:port/db`. */
export function parseDatabaseUrl(url: string): { kind: DatabaseKind; target: string } {
  if (url.startsWith('sqlite:')) return { kind: 'sqlite', target: url.slice('sqlite:'.length) };
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { kind: 'postgres', target: url };
  throw new Error(`DATABASE_URL must start with sqlite: or postgres:// (got "${url.split(':')[0]}:...")`);
}

/**
 * Bounded waits on PostgreSQL, so a database that is away, locked or slow answers a request
 * with an error (503) in seconds instead of holding it: a statement, a lock, and a
 * transaction left idle by a client that went away. Set at the start of each transaction
 * (Database.transaction) with SET LOCAL: they end with it, so nothing depends on the session a
 * connection pooler hands out next.
 */
export const PG_TRANSACTION_LIMITS =
  'SET LOCAL statement_timeout = 30000; SET LOCAL lock_timeout = 10000; SET LOCAL idle_in_transaction_session_timeout = 60000';

/**
 * How long node-postgres waits for any answer before it gives up on the statement (it does
 * not stop the server's work): the bound for statements outside a transaction, and a backstop
 * a little past the statement_timeout that ends those inside one on the server.
 */
export const PG_QUERY_TIMEOUT_MS = 35_000;

/** The one DataSource definition, used by the API and by the migration CLI alike. */
export function createDataSource(url: string, opts: { preparedStatements?: boolean } = {}): DataSource {
  const { kind, target } = parseDatabaseUrl(url);
  const common = {
    entities: ENTITIES,
    migrations: MIGRATIONS,
    synchronize: false,
    migrationsRun: false,
    logging: false,
  } as const;
  let options: DataSourceOptions;
  if (kind === 'sqlite') {
    if (target !== ':memory:') mkdirSync(dirname(resolve(target)), { recursive: true });
    options = {
      ...common,
      type: 'better-sqlite3',
      database: target,
      timeout: 5000,
      // Prepared statements are reused by SQL text; the default 100 thrashes on Tagflow's queries.
      statementCacheSize: 2000,
      // WAL lets readers go on while the single writer commits.
      prepareDatabase: (db: { pragma: (s: string) => unknown }) => {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        db.pragma('foreign_keys = ON');
      },
    };
  } else {
    options = {
      ...common,
      type: 'postgres',
      url: target,
      // No statement_timeout & co. here: node-postgres would send them as startup parameters,
      // which PgBouncer in transaction mode refuses. Transactions set them for themselves
      // (PG_TRANSACTION_LIMITS); statements outside one are bounded by the client.
      // `pipeline`: a statement issued while another is out is sent at once, not after its
      // answer (a transaction's first statement follows its BEGIN: dialect pgTransaction).
      // Only statements of one open transaction (and its COMMIT, behind its last statement:
      // dialect StatementOptions) are ever sent together: PgBouncer in transaction mode may
      // give the server connection to another client once it answers outside a transaction,
      // so nothing is sent behind a COMMIT or a statement of its own.
      extra: { max: 20, connectionTimeoutMillis: 5000, query_timeout: PG_QUERY_TIMEOUT_MS, pipeline: true },
    };
  }
  if (kind === 'postgres') shareResultColumns();
  const dataSource = new DataSource(options);
  // PostgreSQL only: SQLite's statements are prepared and kept by its driver already.
  if (kind === 'postgres' && opts.preparedStatements) prepareStatementsOf(dataSource);
  return dataSource;
}
