import { describe, expect, it } from '@jest/globals';
import { Batcher } from './batcher.js';

/** A batcher whose first write waits for `release()`, recording every batch it writes. */
function gated(maxWeight: number, weight?: (i: number) => number) {
  const batches: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const b = new Batcher<number, number>(
    async (items) => {
      batches.push(items);
      if (batches.length === 1) await gate;
      return items.map((i) => i * 10);
    },
    maxWeight,
    weight,
  );
  return { b, batches, release };
}

describe('Batcher', () => {
  it('writes an idle call alone and at once, and calls made meanwhile together next', async () => {
    const { b, batches, release } = gated(100);
    const first = b.submit(1);
    const later = [b.submit(2), b.submit(3), b.submit(4)];
    release();
    expect(await first).toBe(10);
    expect(await Promise.all(later)).toEqual([20, 30, 40]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it('keeps batches under the weight limit, in order', async () => {
    const { b, batches, release } = gated(5, (i) => i);
    const all = [b.submit(9), b.submit(2), b.submit(3), b.submit(4), b.submit(1)];
    release();
    await Promise.all(all);
    expect(batches).toEqual([[9], [2, 3], [4, 1]]);
  });

  it('fails one item with its own error, or the whole batch when the write throws', async () => {
    let calls = 0;
    const b = new Batcher<number, number>(async (items) => {
      calls++;
      if (items.includes(0)) throw new Error('database down');
      return items.map((i) => (i < 0 ? new Error(`bad ${i}`) : i));
    }, 10);
    await expect(b.submit(-1)).rejects.toThrow('bad -1');
    await expect(b.submit(5)).resolves.toBe(5);
    await expect(b.submit(0)).rejects.toThrow('database down');
    expect(calls).toBe(3);
  });
});
