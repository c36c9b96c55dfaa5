import { createRequire } from 'node:module';

/**
 * node-postgres prepares every result that has rows by its columns: a parser for each, looked
 * up by type, and an empty row with every column (a null-prototype object filled a column at a
 * time, then copied), which each row is a copy of. For the task table's 48 columns that is
 * 12-19 µs a result, and a PostgreSQL report-and-poll hop has about seven results: about 5 % of
 * the API's CPU a hop (bench/README.md, "Nineteenth round"). Both depend only on the columns
 * (name, type, format) and the client's type parsers, so they are made once for each set of
 * columns seen and shared by every result with the same ones, as node-postgres would make them.
 * Each client (a pooled connection) has its own parsers, so each keeps its own sets; a parser
 * is taken when its set is first seen on a connection (Tagflow changes none at run time).
 */

/** A column as node-postgres describes it (its RowDescription's field). */
interface ColumnDescription {
  name: string;
  dataTypeID: number;
  format?: string;
}

type Parser = (raw: unknown) => unknown;

interface TypeParsers {
  getTypeParser: (oid: number, format: string) => Parser;
}

/** The fields of node-postgres's `Result` that `addFields` sets (lib/result.js). */
interface PgResult {
  fields: ColumnDescription[];
  _parsers: Parser[] | undefined;
  _types: TypeParsers | undefined;
  _prebuiltEmptyResultObject: Record<string, null> | null;
  parseRow: (raw: (string | null)[]) => Record<string, unknown>;
  addFields: (this: PgResult, columns: ColumnDescription[]) => void;
}

interface Prepared {
  columns: ColumnDescription[];
  parsers: Parser[];
  emptyRow: Record<string, null>;
}

/** Sets of columns kept for each look-up key; a key shared by more sets than this keeps the last ones. */
const SETS_A_KEY = 8;
/** Keys kept in all; past them the oldest goes (results of statements built at run time). */
const KEYS = 2000;

const require = createRequire(import.meta.url);

/**
 * Makes node-postgres reuse what it prepares for a result's columns (above), once a process.
 * Checked first against node-postgres's own `addFields` on sample columns: should a version
 * of it prepare results otherwise, nothing is changed. Returns: whether it is in place.
 */
export function shareResultColumns(): boolean {
  const Result = require('pg/lib/result.js') as { prototype: PgResult } & (new (
    rowMode?: string,
    types?: TypeParsers,
  ) => PgResult);
  const own = Result.prototype.addFields;
  if ((own as { shared?: boolean }).shared) return true;
  // The type parsers node-postgres itself loads (its own dependency).
  const defaults = createRequire(require.resolve('pg/lib/result.js'))('pg-types') as TypeParsers;
  const kept = new WeakMap<TypeParsers, Map<string, Prepared[]>>();
  const shared = function (this: PgResult, columns: ColumnDescription[]): void {
    this.fields = columns;
    const prepared = preparedFor(kept, this._types ?? defaults, columns);
    if (columns.length) this._parsers = prepared.parsers.slice();
    this._prebuiltEmptyResultObject = prepared.emptyRow;
  };
  try {
    const TypeOverrides = require('pg/lib/type-overrides.js') as new () => TypeParsers;
    if (!sameAsOwn(Result, own, shared, TypeOverrides)) return false;
  } catch {
    // A node-postgres laid out otherwise: its own addFields stays.
    return false;
  }
  Result.prototype.addFields = Object.assign(shared, { shared: true });
  return true;
}

function preparedFor(
  kept: WeakMap<TypeParsers, Map<string, Prepared[]>>,
  types: TypeParsers,
  columns: ColumnDescription[],
): Prepared {
  let byKey = kept.get(types);
  if (!byKey) kept.set(types, (byKey = new Map<string, Prepared[]>()));
  // A key cheap to make; the columns themselves are compared one by one.
  const key = columns.length === 0 ? '' : `${columns.length}\0${columns[0].name}\0${columns[columns.length - 1].name}`;
  const sets = byKey.get(key);
  const found = sets?.find((p) => sameColumns(p.columns, columns));
  if (found) return found;
  const made = prepare(types, columns);
  if (sets) {
    sets.push(made);
    if (sets.length > SETS_A_KEY) sets.shift();
  } else {
    if (byKey.size >= KEYS) byKey.delete(byKey.keys().next().value as string);
    byKey.set(key, [made]);
  }
  return made;
}

/** As node-postgres's addFields makes them (lib/result.js). */
function prepare(types: TypeParsers, columns: ColumnDescription[]): Prepared {
  const row = Object.create(null) as Record<string, null>;
  const parsers = new Array<Parser>(columns.length);
  for (let i = 0; i < columns.length; i++) {
    row[columns[i].name] = null;
    parsers[i] = types.getTypeParser(columns[i].dataTypeID, columns[i].format || 'text');
  }
  // Copies of the descriptions: they are node-postgres's objects, kept here past the result.
  const copies = columns.map(({ name, dataTypeID, format }) => ({ name, dataTypeID, format }));
  return { columns: copies, parsers, emptyRow: { ...row } };
}

function sameColumns(a: ColumnDescription[], b: ColumnDescription[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (
      a[i].name !== b[i].name ||
      a[i].dataTypeID !== b[i].dataTypeID ||
      (a[i].format || 'text') !== (b[i].format || 'text')
    )
      return false;
  }
  return true;
}

/**
 * Whether `shared` leaves a result as node-postgres's own `addFields` does, on sample columns
 * with a client's type parsers (a `TypeOverrides`, as every client's results carry): the same
 * properties, and the same rows parsed.
 */
function sameAsOwn(
  Result: new (rowMode?: string, types?: TypeParsers) => PgResult,
  own: PgResult['addFields'],
  shared: PgResult['addFields'],
  TypeOverrides: new () => TypeParsers,
): boolean {
  const samples: [ColumnDescription[], (string | null)[]][] = [
    [[], []],
    [[{ name: 'id', dataTypeID: 25, format: 'text' }], ['x']],
    [
      [
        { name: 'a', dataTypeID: 20, format: 'text' },
        { name: 'b', dataTypeID: 16, format: 'text' },
        { name: 'a', dataTypeID: 1184, format: 'text' },
        { name: 'j', dataTypeID: 3802, format: 'text' },
        { name: 'n', dataTypeID: 23, format: 'text' },
        { name: 'bin', dataTypeID: 17, format: 'binary' },
      ],
      ['12', 't', '2026-01-02 03:04:05+00', '{"k":[1]}', null, 'ab'],
    ],
  ];
  const types = new TypeOverrides();
  const described = (r: PgResult, raw: (string | null)[]) =>
    JSON.stringify([
      Object.keys(r).sort(),
      r.fields,
      Object.entries(r._prebuiltEmptyResultObject ?? {}),
      (r._parsers ?? []).length,
      raw.length > 0 ? r.parseRow(raw) : null,
    ]);
  return samples.every(([columns, raw]) => {
    const mine = new Result(undefined, types);
    const theirs = new Result(undefined, types);
    shared.call(mine, columns);
    own.call(theirs, columns);
    return (
      described(mine, raw) === described(theirs, raw) &&
      (mine._parsers ?? []).every((p, i) => p === theirs._parsers![i])
    );
  });
}
