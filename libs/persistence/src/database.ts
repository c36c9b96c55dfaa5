import type { DataSource } from 'typeorm';
import type { DatabaseKind } from './data-source.js';
import { kindOf } from './dialect.js';
import { Repositories } from './repositories/index.js';

/**
 * The connection, migrations and transactions. SQLite has one connection and one
 * writer, so there every transaction is serialized in this process (SQLite supports one
 * API process; run PostgreSQL for replicas).
 */
export class Database {
  readonly kind: DatabaseKind;
  private sqliteTail: Promise<unknown> = Promise.resolve();

  constructor(private readonly dataSource: DataSource) {
    this.kind = kindOf(dataSource.manager);
  }

  async initialize(): Promise<void> {
    await this.dataSource.initialize();
    await this.dataSource.runMigrations({ transaction: 'each' });
  }

  async close(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }

  async ping(): Promise<void> {
    await this.dataSource.query('SELECT 1');
  }

  /** Repositories for reads outside a transaction (each statement on its own). */
  read(): Repositories {
    return new Repositories(this.dataSource.manager, Date.now());
  }

  /** Runs `fn` in one transaction, its repositories at one clock (`now` when given). */
  async transaction<T>(fn: (repos: Repositories) => Promise<T>, now?: number): Promise<T> {
    const run = () => this.dataSource.transaction((em) => fn(new Repositories(em, now ?? Date.now())));
    if (this.kind === 'postgres') return run();
    const next = this.sqliteTail.then(run);
    this.sqliteTail = next.catch(() => undefined);
    return next;
  }
}
