import { createRequire } from 'node:module';
import { describe, expect, it } from '@jest/globals';
import { shareResultColumns } from './result-columns.js';

interface Column {
  name: string;
  dataTypeID: number;
  format?: string;
}
interface Result {
  fields: Column[];
  _parsers?: ((raw: unknown) => unknown)[];
  _types?: unknown;
  _prebuiltEmptyResultObject: Record<string, null> | null;
  addFields: (this: Result, columns: Column[]) => void;
  parseRow: (raw: (string | null)[]) => Record<string, unknown>;
}

const require = createRequire(import.meta.url);
const Result = require('pg/lib/result.js') as { prototype: Result } & (new (
  rowMode?: string,
  types?: unknown,
) => Result);
// node-postgres's own, kept before it is replaced.
const own = Result.prototype.addFields;

const column = (name: string, dataTypeID: number, format = 'text'): Column => ({ name, dataTypeID, format });
/** Column sets of the shapes results have: none, one, many, a name twice, binary, same key with another middle. */
const sets: Column[][] = [
  [],
  [column('id', 25)],
  Array.from({ length: 48 }, (_, i) => column(`c${i}`, [25, 1043, 20, 16, 23, 1184, 3802][i % 7])),
  [column('a', 20), column('a', 16)],
  [column('a', 20), column('bin', 17, 'binary'), column('z', 25)],
  [column('a', 20), column('json', 114), column('z', 25)],
  [column('a', 20), column('json', 114), column('y', 25), column('z', 25)],
  // The same names, another type or format.
  [column('a', 20), column('v', 16), column('z', 25)],
  [column('a', 20), column('v', 114), column('z', 25)],
  [column('a', 20), column('v', 17, 'binary'), column('z', 25)],
  [column('a', 20), column('v', 17), column('z', 25)],
];

function prepared(addFields: Result['addFields'], columns: Column[], types?: unknown): Result {
  const r = new Result(undefined, types);
  addFields.call(r, columns);
  return r;
}

describe("node-postgres's results, prepared once for each set of columns", () => {
  it('is in place, and each result is prepared as node-postgres itself would', () => {
    expect(shareResultColumns()).toBe(true);
    expect(Result.prototype.addFields).not.toBe(own);
    for (const columns of [...sets, ...sets]) {
      const mine = prepared(Result.prototype.addFields, columns);
      const theirs = prepared(own, columns);
      expect(mine.fields).toBe(columns);
      expect(Object.entries(mine._prebuiltEmptyResultObject!)).toEqual(
        Object.entries(theirs._prebuiltEmptyResultObject!),
      );
      expect(mine._parsers ?? []).toEqual(theirs._parsers ?? []);
      const raw = columns.map((c, i) =>
        i % 3 === 2 ? null : c.dataTypeID === 16 ? 't' : c.dataTypeID === 114 ? '{"k":1}' : String(i),
      );
      if (columns.length > 0 && !columns.some((c) => c.format === 'binary'))
        expect(mine.parseRow(raw)).toEqual(theirs.parseRow(raw));
    }
  });

  it('shares one empty row between results with the same columns, and none between others', () => {
    shareResultColumns();
    const [, , many, , binary, json, longer] = sets;
    const first = prepared(Result.prototype.addFields, many);
    const again = prepared(
      Result.prototype.addFields,
      many.map((c) => ({ ...c })),
    );
    expect(again._prebuiltEmptyResultObject).toBe(first._prebuiltEmptyResultObject);
    // The same count, first and last names (one look-up key), another column between them.
    expect(prepared(Result.prototype.addFields, json)._parsers).not.toEqual(
      prepared(Result.prototype.addFields, binary)._parsers,
    );
    expect(Object.keys(prepared(Result.prototype.addFields, longer)._prebuiltEmptyResultObject!)).toEqual([
      'a',
      'json',
      'y',
      'z',
    ]);
  });

  it("takes a client's own type parsers, not those prepared for another's", () => {
    shareResultColumns();
    const upper = (raw: unknown) => String(raw).toUpperCase();
    const types = { getTypeParser: () => upper };
    const columns = [column('id', 25)];
    expect(prepared(Result.prototype.addFields, columns)._parsers![0]).not.toBe(upper);
    const mine = prepared(Result.prototype.addFields, columns, types);
    expect(mine._parsers![0]).toBe(upper);
    expect(mine.parseRow(['x'])).toEqual({ id: 'X' });
    expect(prepared(Result.prototype.addFields, columns)._parsers![0]).not.toBe(upper);
  });

  it('leaves node-postgres alone when its own prepares a result otherwise', () => {
    shareResultColumns();
    const sharing = Result.prototype.addFields;
    // A version of node-postgres whose results carry one more thing.
    const other = function (this: Result, columns: Column[]) {
      own.call(this, columns);
      (this as unknown as { extra: number }).extra = 1;
    };
    Result.prototype.addFields = other;
    try {
      expect(shareResultColumns()).toBe(false);
      expect(Result.prototype.addFields).toBe(other);
    } finally {
      Result.prototype.addFields = sharing;
    }
  });
});
