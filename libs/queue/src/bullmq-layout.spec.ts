import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { bullPriority, LAYOUT_READ_FROM, priorityOfScore, QueueLayout, scoreBelow } from './bullmq-layout.js';

describe("BullMQ's layout, as Tagflow reads it", () => {
  it('was read from the BullMQ installed (another version: check the layout again, then update LAYOUT_READ_FROM)', () => {
    const installed = (JSON.parse(readFileSync('node_modules/bullmq/package.json', 'utf8')) as { version: string })
      .version;
    expect(installed).toBe(LAYOUT_READ_FROM);
  });

  it("names a queue's keys under the prefix as BullMQ does", () => {
    const q = new QueueLayout('tf', 'ts-abc');
    expect(q.prioritized).toBe('tf:ts-abc:prioritized');
    expect(q.job('t1-1')).toBe('tf:ts-abc:t1-1');
    expect(q.lock('t1-1')).toBe('tf:ts-abc:t1-1:lock');
  });

  it('maps task priorities to BullMQ priorities and back, higher first', () => {
    expect([100, 0, -100].map(bullPriority)).toEqual([1, 101, 201]);
    expect(bullPriority(500)).toBe(1);
    // A score is priority * 2^32 + the job's place in line.
    for (const p of [100, 1, 0, -100]) expect(priorityOfScore(bullPriority(p) * 2 ** 32 + 12345)).toBe(p);
    expect(scoreBelow(0)).toBe(`(${102 * 2 ** 32}`);
  });
});
