import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { defaultErrorCode, ERROR_CODES } from './error-codes.js';

describe('error codes', () => {
  it('are all listed in docs/api.md, and nothing else is', () => {
    const all = readFileSync('docs/api.md', 'utf8');
    const start = all.indexOf('<a id="error-codes"></a>');
    const doc = all.slice(start, all.indexOf('\n\n', all.indexOf('| code |', start)));
    const listed = [...doc.matchAll(/^\| `([A-Z_]+)` \| /gm)].map((m) => m[1]).sort();
    expect(listed).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('give every status a general code of its own kind', () => {
    expect(defaultErrorCode(401)).toBe('UNAUTHENTICATED');
    expect(defaultErrorCode(409)).toBe('CONFLICT');
    expect(defaultErrorCode(502)).toBe('INTERNAL');
  });
});
