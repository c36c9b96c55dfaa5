import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';

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
 * `token_file`, `namespace`. A config file holding a token must be its owner's alone, and
 * its token goes only to its own `url` (see fileToken).
 */
export function connection(
  flags: { url?: string; token?: string; namespace?: string; config?: string },
  env: NodeJS.ProcessEnv = process.env,
): Connection {
  const file =
    flags.config ??
    env.TAGFLOW_CONFIG ??
    join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'tagflow', 'config.yaml');
  const named = flags.config !== undefined || env.TAGFLOW_CONFIG !== undefined;
  // Everything given by flags and environment: the default file is not needed (nor checked).
  const complete = (flags.url ?? env.TAGFLOW_URL) !== undefined && (flags.token ?? env.TAGFLOW_TOKEN) !== undefined;
  const fromFile = complete && !named ? {} : readConfig(file, named);
  const url = flags.url ?? env.TAGFLOW_URL ?? fromFile.url ?? 'http://127.0.0.1:8080';
  if (!/^https?:\/\//.test(url)) throw new UsageError(`the API URL must start with http:// or https:// (got "${url}")`);
  const explicit = flags.token ?? env.TAGFLOW_TOKEN;
  return {
    url,
    token: explicit ?? fileToken(file, fromFile, url),
    namespace: flags.namespace ?? env.TAGFLOW_NAMESPACE ?? fromFile.namespace,
  };
}

/**
 * The config file's token, for the API at `url`: only when that is the file's own `url`. A
 * file with a token and no url, or a URL from a flag or the environment that is not the file's,
 * is a usage error rather than a request without the token, so the user learns why at once
 * (every command needs a key) and a token is never sent where its file did not say.
 */
function fileToken(file: string, fromFile: { url?: string; token?: string }, url: string): string | undefined {
  if (fromFile.token === undefined) return undefined;
  if (fromFile.url === undefined) {
    throw new UsageError(
      `config file ${file} has a token but no url: add the url of the API it is for (a config file's token is sent only to the url in that file), or set TAGFLOW_URL and TAGFLOW_TOKEN instead`,
    );
  }
  if (sameApi(fromFile.url, url)) return fromFile.token;
  throw new UsageError(
    `the token in config file ${file} is for ${fromFile.url}, not ${url}: set TAGFLOW_TOKEN for that API, or use a config file that names it`,
  );
}

/** Whether two API URLs name the same API (`http://H:80/` is `http://h`). */
function sameApi(a: string, b: string): boolean {
  const norm = (u: string) => {
    try {
      return new URL(u).href.replace(/\/+$/, '');
    } catch {
      return u;
    }
  };
  return norm(a) === norm(b);
}

function readConfig(file: string, required: boolean): { url?: string; token?: string; namespace?: string } {
  if (!existsSync(file)) {
    if (required) throw new UsageError(`config file ${file} does not exist`);
    return {};
  }
  // Others may not change where the key is sent.
  const mode = statSync(file).mode;
  if ((mode & 0o022) !== 0)
    throw new UsageError(
      `config file ${file} can be changed by other users (mode ${(mode & 0o777).toString(8)}): chmod go-w ${file}`,
    );
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  // Errors say where, never what (the line may hold the token).
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter: lines });
  if (doc.errors.length > 0) {
    const at = lines.linePos(doc.errors[0].pos[0]);
    throw new UsageError(`config file ${file} is not valid YAML (line ${at.line}, column ${at.col})`);
  }
  const raw: unknown = doc.toJS();
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new UsageError(`config file ${file} must be a mapping (url, token or token_file, namespace)`);
  const c = raw as Record<string, unknown>;
  for (const k of Object.keys(c))
    if (!['url', 'token', 'token_file', 'namespace'].includes(k))
      throw new UsageError(`config file ${file}: unknown setting "${k}" (known: url, token, token_file, namespace)`);
  const str = (k: string) => {
    if (c[k] === undefined) return undefined;
    if (typeof c[k] !== 'string') throw new UsageError(`config file ${file}: ${k} must be a string`);
    return c[k];
  };
  let token = str('token');
  if (token !== undefined) privateFile(file, 'holds a token');
  const tokenFile = str('token_file');
  if (tokenFile !== undefined) {
    const path = tokenFile.startsWith('~/') ? join(homedir(), tokenFile.slice(2)) : resolve(dirname(file), tokenFile);
    if (!existsSync(path)) throw new UsageError(`config file ${file}: token_file ${path} does not exist`);
    privateFile(path, 'is a token file');
    token = readFileSync(path, 'utf8').trim();
  }
  return { url: str('url'), token, namespace: str('namespace') };
}

/** A file with a secret that others may read is refused: say how to fix it. */
function privateFile(file: string, what: string): void {
  const st = statSync(file);
  if ((st.mode & 0o077) !== 0)
    throw new UsageError(
      `${file} ${what} and others may read it (mode ${(st.mode & 0o777).toString(8)}): chmod 600 ${file}`,
    );
}
