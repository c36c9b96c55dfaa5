import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { createDataSource } from './data-source.js';
import { Database } from './database.js';
import { SERVING_CHECKPOINT_FRAMES } from './sqlite-checkpoints.js';

/** Bytes of the WAL the database file has not taken back yet, as far as its size tells. */
const size = (file: string) => {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
};

/** About 2,000 pages: past SQLite's own threshold (1,000), in one transaction. */
async function fill(ds: DataSource, rows: number): Promise<void> {
  await ds.transaction(async (em) => {
    await em.query('CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, body TEXT)');
    for (let i = 0; i < rows; i++) await em.query('INSERT INTO filler (body) VALUES (?)', ['x'.repeat(2000)]);
  });
}

describe('SQLite WAL checkpoints in a thread of their own', () => {
  const dirs: string[] = [];
  const opened: Database[] = [];
  afterEach(async () => {
    for (const db of opened.splice(0)) await db.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const open = async (aside: boolean, warned: string[] = [], file?: string) => {
    if (!file) {
      const dir = mkdtempSync(join(tmpdir(), 'tagflow-wal-'));
      dirs.push(dir);
      file = join(dir, 'x.db');
    }
    const ds = createDataSource(`sqlite:${file}`);
    const db = new Database(ds, aside ? { checkpointsAside: { warn: (why) => warned.push(why) } } : {});
    await db.initialize();
    opened.push(db);
    return { db, ds, file };
  };

  it('copies committed pages back into the database file without the serving connection doing it', async () => {
    const warned: string[] = [];
    const { db, ds, file } = await open(true, warned);
    expect(await ds.query('PRAGMA wal_autocheckpoint')).toEqual([{ wal_autocheckpoint: SERVING_CHECKPOINT_FRAMES }]);
    const before = size(file);
    await fill(ds, 2000);
    expect(size(`${file}-wal`)).toBeGreaterThan(4_000_000);
    const deadline = Date.now() + 5000;
    while (size(file) < before + 4_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(size(file)).toBeGreaterThan(before + 4_000_000);
    // The writer goes on meanwhile, and everything written is there once reopened.
    await fill(ds, 10);
    await db.close();
    const again = await open(false, [], file);
    expect(await again.ds.query('SELECT COUNT(*) AS n FROM filler')).toEqual([{ n: 2010 }]);
    await again.db.close();
    expect(warned).toEqual([]);
  });

  it('lets the WAL start over under writes that never pause, past its limit', async () => {
    const { db, ds, file } = await open(true);
    // 120 MB in small transactions back to back: a passive copy is rarely done before the next
    // COMMIT, so the WAL would hold all of it if the serving connection never checkpointed.
    for (let i = 0; i < 600; i++) await fill(ds, 100);
    // Past the limit each COMMIT tries, and gives way while the thread is copying: about the limit, not all.
    expect(size(`${file}-wal`)).toBeLessThan(SERVING_CHECKPOINT_FRAMES * 4096 * 2);
    await db.close();
  });

  it('leaves SQLite to checkpoint in the COMMIT when not asked (a short command)', async () => {
    const { db, ds, file } = await open(false);
    const before = size(file);
    await fill(ds, 2000);
    // The COMMIT itself copied the pages back.
    expect(size(file)).toBeGreaterThan(before + 4_000_000);
    await db.close();
  });
});
