import { Column, PrimaryColumn, type ColumnOptions } from 'typeorm';

/**
 * Times are stored as epoch milliseconds in a BIGINT: the same type, ordering and
 * arithmetic on SQLite and PostgreSQL. PostgreSQL hands BIGINT back as a string.
 */
const msTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | number | null) => (value === null || value === undefined ? null : Number(value)),
};

export function MsColumn(options: ColumnOptions = {}): PropertyDecorator {
  return Column({ type: 'bigint', nullable: true, transformer: msTransformer, ...options });
}

/**
 * A BIGINT read as a number. PostgreSQL hands BIGINT back as a string; a value a number
 * cannot hold exactly (past 2^53) is refused rather than rounded.
 */
export function bigintToNumber(value: string | number): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`${value} does not fit a JavaScript number exactly`);
  return n;
}

/**
 * The generated 64-bit id of a table that grows without bound (events, logs, audit): BIGINT
 * on PostgreSQL (migration 24), INTEGER PRIMARY KEY on SQLite (64-bit already). Read as a
 * number: ids stay far below 2^53.
 */
export function IdColumn(): PropertyDecorator {
  return PrimaryColumn({
    type: 'bigint',
    generated: 'increment',
    transformer: { to: (v: number | undefined) => v, from: (v: string | number) => bigintToNumber(v) },
  });
}

/** JSON stored as text: identical behaviour on both databases; Tagflow never queries inside it. */
export function JsonColumn(options: ColumnOptions = {}): PropertyDecorator {
  return Column({ type: 'simple-json', ...options });
}

/**
 * A JSON value kept in a JsonColumn. `any` on purpose: TypeORM's partial-entity types
 * used by update() reject `unknown` inside JSON objects; values are checked at the API edge.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;
export type JsonObject = Record<string, Json>;
