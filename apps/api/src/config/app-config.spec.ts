import { describe, expect, it } from '@jest/globals';
import { loadConfig } from './app-config.js';

describe('loadConfig: DATABASE_PREPARED_STATEMENTS', () => {
  it('is off unless set, and takes on or off', () => {
    expect(loadConfig({}).DATABASE_PREPARED_STATEMENTS).toBe('off');
    expect(loadConfig({ DATABASE_PREPARED_STATEMENTS: 'on' }).DATABASE_PREPARED_STATEMENTS).toBe('on');
    expect(loadConfig({ DATABASE_PREPARED_STATEMENTS: 'off' }).DATABASE_PREPARED_STATEMENTS).toBe('off');
  });

  it('refuses anything else, naming the variable and what it takes', () => {
    expect(() => loadConfig({ DATABASE_PREPARED_STATEMENTS: 'yes' })).toThrow(
      /DATABASE_PREPARED_STATEMENTS="yes": DATABASE_PREPARED_STATEMENTS must be on or off/,
    );
  });
});
