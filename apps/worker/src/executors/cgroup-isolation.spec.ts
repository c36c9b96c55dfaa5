import { describe, expect, it } from '@jest/globals';
import { cgroupDir } from './cgroup-isolation.js';

// /proc/self/mountinfo lines: ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS
const HYBRID = [
  '30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
  '31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate',
  '36 30 0:32 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,freezer',
  '37 30 0:33 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids',
].join('\n');

describe('cgroupDir', () => {
  it("finds the worker's own cgroup in the unified hierarchy and in v1's freezer", () => {
    const own =
      '12:pids:/system.slice/tagflow.service\n6:freezer:/\n1:name=systemd:/system.slice/tagflow.service\n0::/system.slice/tagflow.service\n';
    expect(cgroupDir(2, HYBRID, own)).toBe('/sys/fs/cgroup/unified/system.slice/tagflow.service');
    expect(cgroupDir(1, HYBRID, own)).toBe('/sys/fs/cgroup/freezer');
  });

  it('reads a pure cgroup v2 machine, and a hierarchy mounted from inside (a container without a cgroup namespace)', () => {
    expect(cgroupDir(2, '25 20 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw', '0::/user.slice/worker\n')).toBe(
      '/sys/fs/cgroup/user.slice/worker',
    );
    expect(cgroupDir(2, '25 20 0:23 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw', '0::/docker/abc/sub\n')).toBe(
      '/sys/fs/cgroup/sub',
    );
    expect(cgroupDir(1, HYBRID, '0::/\n')).toBeUndefined(); // no freezer line: v1 is not used for this process
  });

  it("finds nothing where the hierarchy is not mounted, or the worker's cgroup lies outside the mount", () => {
    expect(cgroupDir(2, '36 30 0:32 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer', '0::/\n')).toBeUndefined();
    expect(cgroupDir(1, HYBRID.replace('rw,freezer', 'rw,cpu'), '6:freezer:/\n')).toBeUndefined();
    expect(
      cgroupDir(2, '25 20 0:23 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw', '0::/docker/abcdef\n'),
    ).toBeUndefined();
  });
});
