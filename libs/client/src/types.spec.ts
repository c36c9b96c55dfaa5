import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe("the client's wire types", () => {
  it('are generated from the OpenAPI document as it is kept (npm run openapi writes both)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tagflow-types-'));
    try {
      const out = join(dir, 'openapi.generated.ts');
      execFileSync(
        process.execPath,
        [
          'node_modules/openapi-typescript/bin/cli.js',
          'docs/openapi.json',
          '--redocly',
          'examples/typed-client/redocly.yaml',
          '-o',
          out,
          '--silent',
        ],
        { stdio: 'pipe', timeout: 60_000 },
      );
      expect(readFileSync('libs/client/src/openapi.generated.ts', 'utf8')).toBe(readFileSync(out, 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
