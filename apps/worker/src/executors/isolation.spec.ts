import { describe, expect, it } from '@jest/globals';
import { parseStatus, untilNoneLeft } from './isolation.js';

const status = (state: string, uids: string) =>
  `Name:\tsh\nUmask:\t0022\nState:\t${state}\nTgid:\t42\nPid:\t42\nUid:\t${uids}\nGid:\t65534\t65534\t65534\t65534\n`;

describe('parseStatus', () => {
  it('reads the real, effective and saved uid of a live process', () => {
    expect(parseStatus(42, status('S (sleeping)', '65534\t0\t0\t0'))).toEqual({
      pid: 42,
      real: 65534,
      effective: 0,
      saved: 0,
      stopped: false,
    });
  });

  it('tells a stopped process (SIGSTOP) from a running one', () => {
    expect(parseStatus(42, status('T (stopped)', '65534\t65534\t65534\t65534'))?.stopped).toBe(true);
  });

  it('leaves out zombies: dead already, only waiting to be collected', () => {
    expect(parseStatus(42, status('Z (zombie)', '65534\t65534\t65534\t65534'))).toBeUndefined();
  });
});

describe('untilNoneLeft', () => {
  it('kills again until nothing is left, and says what is stuck or why a pass failed', async () => {
    const answers: (number[] | Error)[] = [new Error('EIO'), [7, 8], [8], []];
    const heard: string[] = [];
    await untilNoneLeft(
      async () => {
        const next = answers.shift()!;
        if (next instanceof Error) throw next;
        return next;
      },
      (left, error) => heard.push(`${left.join(',')}:${error ?? ''}`),
    );
    expect(answers).toEqual([]);
    expect(heard).toEqual([':EIO']);
  });
});
