import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';

/** Where the command line finds the API and its key. */
export interface Connection {
  url: string;
  token?: string;
  namespace?: string;
}

export class UsageError extends Error {}

/**
 * Flags first, then TAGFLOW_URL / TAGFLOW_TOKEN / TAGFLOW_NAMESPACE, then the config file
 * (`--config`, TAGFLOW_CONFIG, or ~/.config/tagflow/config.yaml): `url`, `token` or
 * `token_file`, `namespace`. A config file holding a token must be its owner's alone.
 */
export function connection(flags: { url?: string; token?: string; namespace?: string; config?: string }, env: NodeJS.ProcessEnv = process.env): Connection {
  const file = flags.config ?? env.TAGFLOW_CONFIG ?? join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'tagflow', 'config.yaml');
  const fromFile = readConfig(file, flags.config !== undefined || env.TAGFLOW_CONFIG !== undefined);
  const url = flags.url ?? env.TAGFLOW_URL ?? fromFile.url ?? 'http://127.0.0.1:8080';
  if (!/^https?:\/\//.test(url)) throw new UsageError(`the API URL must start with http:// or https:// (got "${url}")`);
  return {
    url,
    token: flags.token ?? env.TAGFLOW_TOKEN ?? fromFile.token,
    namespace: flags.namespace ?? env.TAGFLOW_NAMESPACE ?? fromFile.namespace,
  };
}

function readConfig(file: string, required: boolean): { url?: string; token?: string; namespace?: string } {
  if (!existsSync(file)) {
    if (required) throw new UsageError(`config file ${file} does not exist`);
    return {};
  }
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`config file ${file} is not valid YAML: ${(e as Error).message}`);
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new UsageError(`config file ${file} must be a mapping (url, token or token_file, namespace)`);
  const c = raw as Record<string, unknown>;
  for (const k of Object.keys(c)) if (!['url', 'token', 'token_file', 'namespace'].includes(k)) throw new UsageError(`config file ${file}: unknown setting "${k}" (known: url, token, token_file, namespace)`);
  const str = (k: string) => {
    if (c[k] === undefined) return undefined;
    if (typeof c[k] !== 'string') throw new UsageError(`config file ${file}: ${k} must be a string`);
    return c[k];
  };
  let token = str('token');
  if (token !== undefined) privateFile(file, 'holds a token');
  const tokenFile = str('token_file');
  if (tokenFile !== undefined) {
    privateFile(tokenFile, 'is a token file');
    token = readFileSync(tokenFile, 'utf8').trim();
  }
  return { url: str('url'), token, namespace: str('namespace') };
}

/** A file with a secret that others may read is refused: say how to fix it. */
function privateFile(file: string, what: string): void {
  const st = statSync(file);
  if ((st.mode & 0o077) !== 0) throw new UsageError(`${file} ${what} and others may read it (mode ${(st.mode & 0o777).toString(8)}): chmod 600 ${file}`);
}
