import { Column, type ColumnOptions } from 'typeorm';

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
