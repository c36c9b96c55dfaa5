import { describe, expect, it } from '@jest/globals';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connection } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'tagflow-config-'));

function config(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, 0o600);
  return path;
}

describe("a config file's token", () => {
  const withUrl = config('with-url.yaml', 'url: https://tagflow.example.com\ntoken: tfk_file\nnamespace: team-a\n');
  const noUrl = config('no-url.yaml', 'token: tfk_file\n');

  it('goes to the url in its file, however that URL is spelled', () => {
    expect(connection({ config: withUrl }, {})).toEqual({
      url: 'https://tagflow.example.com',
      token: 'tfk_file',
      namespace: 'team-a',
    });
    expect(connection({ config: withUrl }, { TAGFLOW_URL: 'https://TAGFLOW.example.com:443/' }).token).toBe('tfk_file');
  });

  it('goes nowhere else: another URL from a flag or the environment is refused, naming both', () => {
    expect(() => connection({ config: withUrl, url: 'http://elsewhere:8080' }, {})).toThrow(
      `the token in config file ${withUrl} is for https://tagflow.example.com, not http://elsewhere:8080`,
    );
    expect(() =>
      connection({}, { TAGFLOW_CONFIG: withUrl, TAGFLOW_URL: 'https://tagflow.example.com.evil.test' }),
    ).toThrow('is for https://tagflow.example.com, not');
  });

  it('is refused when its file names no url, whatever URL is given elsewhere', () => {
    for (const env of [{}, { TAGFLOW_URL: 'http://elsewhere:8080' }]) {
      expect(() => connection({ config: noUrl }, env)).toThrow(`config file ${noUrl} has a token but no url`);
    }
  });

  it('gives way to a token from the environment, which goes to the URL given with it', () => {
    expect(
      connection({ config: noUrl }, { TAGFLOW_URL: 'http://elsewhere:8080', TAGFLOW_TOKEN: 'tfk_env' }),
    ).toMatchObject({ url: 'http://elsewhere:8080', token: 'tfk_env' });
    expect(connection({ config: withUrl }, { TAGFLOW_TOKEN: 'tfk_env' })).toMatchObject({
      url: 'https://tagflow.example.com',
      token: 'tfk_env',
    });
  });
});
