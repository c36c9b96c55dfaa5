import { describe, expect, it } from '@jest/globals';
import { matchOnError } from './on-error.js';
import { hasRetryLeft, normalizeRetry, retryDelayMs } from './retry.js';
import { TagsetIndex } from './tagset-index.js';
import { canonicalTags, tagsetId, tagsMatch } from './tagset.js';

describe('retry policy', () => {
  it('counts retries after the first attempt', () => {
    const p = normalizeRetry({ count: 2 });
    expect([1, 2, 3].map((a) => hasRetryLeft(p, a))).toEqual([true, true, false]);
    expect(hasRetryLeft(normalizeRetry(undefined), 1)).toBe(false);
  });

  it('backs off exponentially up to the cap', () => {
    const p = normalizeRetry({ count: 5, delay_s: 1, backoff: 2, max_delay_s: 5 });
    expect([1, 2, 3, 4].map((a) => retryDelayMs(p, a))).toEqual([1000, 2000, 4000, 5000]);
  });
});

describe('on_error matching', () => {
  const entries = [{ codes: ['TIMEOUT'], run: ['t'] }, { codes: ['3'], run: ['three'] }, { run: ['any'] }];
  it('picks the first entry whose codes match the error code or the exit code', () => {
    expect(matchOnError(entries, 'TIMEOUT', null)?.run).toEqual(['t']);
    expect(matchOnError(entries, 'X', 3)?.run).toEqual(['three']);
    expect(matchOnError(entries, 'X', 4)?.run).toEqual(['any']);
  });
  it('finds nothing without a catch-all', () => {
    expect(matchOnError(entries.slice(0, 2), 'X', 4)).toBeUndefined();
  });
});

describe('tag sets', () => {
  it('identifies a tag set regardless of order and duplicates', () => {
    expect(canonicalTags(['b', 'a', 'b'])).toEqual(['a', 'b']);
    expect(tagsetId(['b', 'a'])).toBe(tagsetId(['a', 'b', 'a']));
    expect(tagsetId(['a'])).not.toBe(tagsetId(['a', 'b']));
  });

  it('keeps the ids queues already have, asked once or many times, in any namespace', () => {
    for (let i = 0; i < 3; i++) {
      expect(tagsetId(['b', 'a'])).toBe('0473ef2dc0d324ab659d3580');
      expect(tagsetId(['a', 'b'])).toBe('0473ef2dc0d324ab659d3580');
      expect(tagsetId(['a'], 'team')).toBe('812fe6e2deab76a2f0837a5e');
      expect(tagsetId([])).toBe('4f53cda18c2baa0c0354bb5f');
    }
    expect(tagsetId(['a'], 'team')).not.toBe(tagsetId(['a']));
  });

  it('offers a task to polls that have every tag it carries (capabilities)', () => {
    expect(tagsMatch(['web'], ['linux', 'web'])).toBe(true);
    expect(tagsMatch(['linux', 'web'], ['web'])).toBe(false);
    expect(tagsMatch([], [])).toBe(true);
  });

  it('indexes tag sets so a poll finds exactly the ones within its capabilities', () => {
    const index = new TagsetIndex();
    index.add('1', ['linux', 'web']);
    index.add('2', ['linux', 'db']);
    index.add('3', ['web']);
    expect(index.add('3', ['web'])).toBe(false);
    expect(index.matching(['web'])).toEqual(['3']);
    expect(index.matching(['linux', 'web']).sort()).toEqual(['1', '3']);
    expect(index.matching(['mac'])).toEqual([]);
    expect(index.matching(['*']).sort()).toEqual(['1', '2', '3']);
  });

  it('stays exact with thousands of tag sets', () => {
    const index = new TagsetIndex();
    for (let i = 0; i < 5000; i++) index.add(`s${i}`, [`host-${i}`, `rack-${i % 50}`, 'linux']);
    expect(index.matching([`host-42`, 'linux', 'rack-42'])).toEqual(['s42']);
    expect(index.matching(['rack-7', 'linux'])).toEqual([]);
  });
});
