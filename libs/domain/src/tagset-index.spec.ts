import { describe, expect, it } from '@jest/globals';
import { tagsMatch } from './tagset.js';
import { PollIndex, TagsetIndex } from './tagset-index.js';

/** A small deterministic generator, so a failure names the same case every run. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TAGS = ['web', 'db', 'eu-west', 'us-east', 'host:web01', 'host:web02', 'linux'];
const SCOPES = ['@ns:default', '@ns:team-a'];

function randomTags(rnd: () => number, max: number, withAny: boolean): string[] {
  const tags = TAGS.filter(() => rnd() < max / TAGS.length);
  if (withAny && rnd() < 0.1) tags.push('*');
  tags.push(SCOPES[rnd() < 0.7 ? 0 : 1]);
  return [...new Set(tags)].sort();
}

describe('tagsMatch (capabilities)', () => {
  it('fits a task whose every tag the poll has, an untagged task anywhere in its scope, and anything for *', () => {
    const poll = ['eu-west', 'host:web01', 'web'];
    expect(tagsMatch(['web'], poll)).toBe(true);
    expect(tagsMatch(['host:web01'], poll)).toBe(true);
    expect(tagsMatch(['host:web02', 'web'], poll)).toBe(false);
    expect(tagsMatch([], poll)).toBe(true);
    expect(tagsMatch(['db'], ['*'])).toBe(true);
    // A scope tag is not a capability: * does not reach into another namespace.
    expect(tagsMatch(['@ns:team-a', 'db'], ['*', '@ns:default'])).toBe(false);
    expect(tagsMatch(['@ns:team-a', 'db'], ['*', '@ns:team-a'])).toBe(true);
    // A poll with no capability takes only untagged tasks.
    expect(tagsMatch(['web'], ['@ns:default'])).toBe(false);
    expect(tagsMatch(['@ns:default'], ['@ns:default'])).toBe(true);
  });
});

describe('TagsetIndex', () => {
  it("finds exactly the tag sets whose tags are all among the poll's (random sets and polls against brute force)", () => {
    const rnd = mulberry32(7);
    const index = new TagsetIndex();
    const sets = new Map<string, string[]>();
    for (let i = 0; i < 300; i++) {
      const tags = randomTags(rnd, 2, false);
      const id = tags.join(',');
      if (!sets.has(id)) sets.set(id, tags);
      index.add(id, tags);
    }
    for (let i = 0; i < 300; i++) {
      const poll = randomTags(rnd, 3, true);
      const expected = [...sets]
        .filter(([, tags]) => tagsMatch(tags, poll))
        .map(([id]) => id)
        .sort();
      expect([poll, index.matching(poll).sort()]).toEqual([poll, expected]);
    }
  });

  it('forgets a removed tag set', () => {
    const index = new TagsetIndex();
    index.add('a', ['@ns:default', 'web']);
    index.add('b', ['@ns:default']);
    expect(index.matching(['@ns:default', 'web']).sort()).toEqual(['a', 'b']);
    index.remove('a');
    index.remove('b');
    expect(index.matching(['@ns:default', 'web'])).toEqual([]);
    expect(index.size).toBe(0);
  });

  it('looks only at the tag sets that share a tag with the poll', () => {
    const index = new TagsetIndex();
    for (let i = 0; i < 10_000; i++) index.add(`h${i}`, ['@ns:default', `host:h${i}`]);
    index.add('web', ['@ns:default', 'web']);
    const started = performance.now();
    for (let i = 0; i < 1000; i++)
      expect(index.matching(['@ns:default', 'host:h7', 'web']).sort()).toEqual(['h7', 'web']);
    // 1,000 polls against 10,001 tag sets: far below a scan of every tag set per poll.
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('PollIndex', () => {
  it('finds exactly the parked polls whose capabilities cover a tag set (random polls and sets against brute force)', () => {
    const rnd = mulberry32(11);
    const index = new PollIndex<{ tags: string[] }>();
    const polls = Array.from({ length: 200 }, () => ({ tags: randomTags(rnd, 3, true) }));
    for (const p of polls) index.add(p);
    for (let i = 0; i < 300; i++) {
      const set = randomTags(rnd, 2, false);
      expect(new Set(index.matching(set))).toEqual(new Set(polls.filter((p) => tagsMatch(set, p.tags))));
    }
  });

  it('first: the first of matching that is accepted (random polls and sets against matching)', () => {
    const rnd = mulberry32(12);
    const index = new PollIndex<{ tags: string[]; room: boolean }>();
    const polls = Array.from({ length: 200 }, () => ({ tags: randomTags(rnd, 3, true), room: rnd() < 0.5 }));
    for (const p of polls) index.add(p);
    for (let i = 0; i < 300; i++) {
      const set = randomTags(rnd, 2, false);
      expect(index.first(set, (p) => p.room)).toBe(index.matching(set).find((p) => p.room));
    }
  });

  it('forgets a deleted poll and counts what is parked', () => {
    const index = new PollIndex<{ tags: string[] }>();
    const a = { tags: ['@ns:default', 'host-1'] };
    const b = { tags: ['@ns:default', 'host-1', 'linux'] };
    index.add(a);
    index.add(b);
    index.add(a);
    expect(index.size).toBe(2);
    index.delete(a);
    index.delete(a);
    expect(index.matching(['@ns:default', 'host-1', 'linux'])).toEqual([b]);
    expect(index.size).toBe(1);
    index.delete(b);
    expect(index.matching(['@ns:default', 'host-1'])).toEqual([]);
  });

  it('checks only the polls filed under the least crowded tag of the set', () => {
    let looked = 0;
    const counted = (tags: string[]) => ({
      get tags() {
        looked++;
        return tags;
      },
    });
    const index = new PollIndex<{ tags: string[] }>();
    for (let i = 0; i < 100; i++) index.add(counted(['@ns:default', 'linux', `host-${String(i).padStart(3, '0')}`]));
    looked = 0;
    expect(index.matching(['@ns:default', 'host-007', 'linux'])).toHaveLength(1);
    // Through "linux", all 100 polls would have been checked.
    expect(looked).toBeLessThanOrEqual(3);
  });
});
