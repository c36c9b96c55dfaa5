import type { EntityManager, EntityTarget, ObjectLiteral, QueryRunner } from 'typeorm';

/**
 * Hand-written SQL for the hot path (claims, reports, readiness probes). TypeORM's query
 * builder and its entity loading cost five to ten times the statement itself there
 * (bench/README.md). The statements use `:name` parameters on both databases; an array
 * parameter expands to a list (`id IN (:ids)`, never empty); booleans become 0/1 on
 * SQLite. Rows come back raw; `hydrate` turns one into an entity with the entity's own
 * column rules (JSON, booleans, epoch-ms), so callers get the same objects as from a
 * repository.
 */
export interface SqlResult {
  rows: Record<string, unknown>[];
  affected: number;
}

type Segment = string | { name: string };

const parsed = new Map<string, Segment[]>();

function parse(text: string): Segment[] {
  const cached = parsed.get(text);
  if (cached) return cached;
  const segments: Segment[] = [];
  let last = 0;
  // `:name`, but not PostgreSQL's `::type` casts.
  for (const m of text.matchAll(/(?<!:):([A-Za-z_][A-Za-z0-9_]*)/g)) {
    segments.push(text.slice(last, m.index), { name: m[1] });
    last = m.index + m[0].length;
  }
  segments.push(text.slice(last));
  parsed.set(text, segments);
  return segments;
}

/** A value as the driver binds it: undefined as NULL; booleans as 0/1 on SQLite, which has no boolean. */
export function bindable(value: unknown, sqlite: boolean): unknown {
  if (value === undefined) return null;
  if (sqlite && typeof value === 'boolean') return value ? 1 : 0;
  return value;
}

/** Runs one statement in `em`'s transaction (or on its own when `em` has none). */
export async function sql(em: EntityManager, text: string, params: Record<string, unknown> = {}): Promise<SqlResult> {
  const sqlite = em.connection.options.type !== 'postgres';
  const values: unknown[] = [];
  const placeholder = () => (sqlite ? '?' : `$${values.length}`);
  let out = '';
  for (const s of parse(text)) {
    if (typeof s === 'string') {
      out += s;
      continue;
    }
    if (!(s.name in params)) throw new Error(`SQL parameter :${s.name} has no value`);
    const value = params[s.name];
    if (Array.isArray(value)) {
      if (value.length === 0) throw new Error(`SQL parameter :${s.name} is an empty list`);
      out += value.map((v) => (values.push(bindable(v, sqlite)), placeholder())).join(', ');
    } else {
      values.push(bindable(value, sqlite));
      out += placeholder();
    }
  }
  return query(em, out, values);
}

/** Runs one statement with positional parameters (`?` on SQLite, `$n` on PostgreSQL) in `em`'s transaction. */
export async function query(em: EntityManager, text: string, values: unknown[]): Promise<SqlResult> {
  const own: QueryRunner | undefined = em.queryRunner ? undefined : em.connection.createQueryRunner();
  try {
    const result = await (em.queryRunner ?? own!).query(text, values, true);
    const rows = Array.isArray(result.records) ? (result.records as Record<string, unknown>[]) : [];
    return { rows, affected: result.affected ?? rows.length };
  } finally {
    await own?.release();
  }
}

/** A raw row (every column, by database name) as an entity. */
export function hydrate<T extends ObjectLiteral>(em: EntityManager, entity: EntityTarget<T>, raw: Record<string, unknown>): T {
  const meta = em.connection.getMetadata(entity);
  const driver = em.connection.driver;
  const out = meta.create() as T;
  for (const column of meta.columns) {
    if (column.databaseName in raw) column.setEntityValue(out, driver.prepareHydratedValue(raw[column.databaseName], column));
  }
  return out;
}

/** A value as the database stores it in that column (JSON as text, transformers applied). */
export function persisted<T extends ObjectLiteral>(em: EntityManager, entity: EntityTarget<T>, property: string, value: unknown): unknown {
  const column = em.connection.getMetadata(entity).findColumnWithPropertyName(property);
  if (!column) throw new Error(`no column ${property}`);
  return em.connection.driver.preparePersistentValue(value, column);
}
