import { describe, expect, it } from '@jest/globals';
import { createDataSource } from './data-source.js';
import { preparesStatements, renameStatements, statementName } from './prepared.js';

describe('prepared statements', () => {
  it('names a text by its hash: the same text always the same name, another text another', () => {
    const a = statementName('SELECT * FROM task WHERE id = $1', 1);
    expect(a).toMatch(/^tf0_[0-9a-f]{40}$/);
    expect(statementName('SELECT * FROM task WHERE id = $1', 1)).toBe(a);
    expect(statementName('SELECT * FROM task WHERE id = $2', 2)).not.toBe(a);
  });

  it('names no text without parameters or with more than 32', () => {
    expect(statementName('SELECT 1', 0)).toBeNull();
    expect(statementName('SELECT * FROM task WHERE id IN ($1, …, $33)', 33)).toBeNull();
    expect(statementName('SELECT * FROM task WHERE id IN ($1, …, $32)', 32)).not.toBeNull();
  });

  it('after a schema change, names every text anew', () => {
    const before = statementName('SELECT * FROM workflow WHERE id = $1', 1);
    renameStatements();
    const after = statementName('SELECT * FROM workflow WHERE id = $1', 1);
    expect(after).not.toBe(before);
    expect(after).toMatch(/^tf1_/);
    expect(statementName('SELECT * FROM workflow WHERE id = $1', 1)).toBe(after);
  });

  it('names at most 1,000 texts in a process; later ones run unnamed, earlier ones keep their names', () => {
    const first = statementName('SELECT 1 WHERE $1::int = 1', 1);
    for (let n = 0; n < 1000; n++) statementName(`SELECT * FROM task WHERE id IN (${n}) AND state = $1`, 1);
    expect(statementName('SELECT * FROM task WHERE name = $1', 1)).toBeNull();
    expect(statementName('SELECT 1 WHERE $1::int = 1', 1)).toBe(first);
  });

  it("is a PostgreSQL data source's, when asked for; never SQLite's, nor by default", () => {
    expect(preparesStatements(createDataSource('postgres://u@127.0.0.1:1/db', { preparedStatements: true }))).toBe(
      true,
    );
    expect(preparesStatements(createDataSource('postgres://u@127.0.0.1:1/db'))).toBe(false);
    expect(preparesStatements(createDataSource('sqlite::memory:', { preparedStatements: true }))).toBe(false);
  });
});
