import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { TAGFLOW_VERSION } from './version.js';

describe('TAGFLOW_VERSION', () => {
  it('is the version package.json releases', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(TAGFLOW_VERSION).toBe(pkg.version);
  });
});
