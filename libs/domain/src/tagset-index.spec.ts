import { describe, expect, it } from '@jest/globals';
import { tagsMatch } from './tagset.js';
import { PollIndex } from './tagset-index.js';

describe('PollIndex', () => {
  const poll = (...tags: string[]) => ({ tags });

  it('finds exactly the polls whose tags are all in the tag set, whatever tag each is filed under', () => {
    const index = new PollIndex<{ tags: string[] }>();
    const polls = [poll('linux'), poll('linux', 'web'), poll('web'), poll('db', 'linux'), poll('db'), poll(), poll('linux', 'web', 'eu')];
    for (const p of polls) index.add(p);
    for (const tagset of [['linux'], ['linux', 'web'], ['db', 'linux', 'web'], ['eu', 'linux', 'web'], ['mac'], []]) {
      expect(new Set(index.matching(tagset))).toEqual(new Set(polls.filter((p) => tagsMatch(tagset, p.tags))));
    }
  });

  it('forgets a deleted poll and counts what is parked', () => {
    const index = new PollIndex<{ tags: string[] }>();
    const a = poll('host-1');
    const b = poll('host-1', 'linux');
    index.add(a);
    index.add(b);
    index.add(a);
    expect(index.size).toBe(2);
    index.delete(a);
    index.delete(a);
    expect(index.matching(['host-1', 'linux'])).toEqual([b]);
    expect(index.size).toBe(1);
    index.delete(b);
    expect(index.matching(['host-1', 'linux'])).toEqual([]);
  });

  it('files a poll under its least crowded tag, so one busy tag does not make every announcement scan it', () => {
    let looked = 0;
    const counted = (tags: string[]) => ({
      get tags() {
        looked++;
        return tags;
      },
    });
    const index = new PollIndex<{ tags: string[] }>();
    for (let i = 0; i < 100; i++) index.add(counted(['linux', `host-${String(i).padStart(3, '0')}`]));
    looked = 0;
    expect(index.matching(['host-007', 'linux'])).toHaveLength(1);
    // Filed under "linux", all 100 polls would have been checked.
    expect(looked).toBeLessThanOrEqual(2);
  });
});
