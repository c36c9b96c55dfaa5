import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { LIMITS, NAMESPACE_PATTERN } from '@tagflow/domain';
import { createDataSource, Database, type Role } from '@tagflow/persistence';
import { ROLES } from './access.js';
import { granted } from './grants.js';
import { insertKey, newToken, tokenHash } from './keys.service.js';

const USAGE = `usage:
  tagflow-api keys create --name NAME --role admin|operator|reader|worker [--namespace NS] [--tags web*,host:db01] [--expires ISO-TIME] [--token-file FILE]
      writes a key (in namespace NS: default "default", and "*", every namespace, for an admin key) into the database of DATABASE_URL (default sqlite:./data/tagflow.db) and prints its token, once;
      with --token-file, the token is the one in FILE (a new one is written there, mode 0600, if FILE does not exist)
      and a key that already has it is left as it is
  tagflow-api keys token
      prints a new random token (for TAGFLOW_ADMIN_TOKEN)`;

/**
 * `node dist/apps/api/main.js keys ...`: key administration run against the database,
 * for the first key of an installation (before any key exists to call POST /v1/keys with).
 */
export async function keysCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === 'token') {
    process.stdout.write(`${newToken()}\n`);
    return 0;
  }
  if (verb !== 'create') {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  let values: {
    name?: string;
    role?: string;
    namespace?: string;
    tags?: string;
    expires?: string;
    'token-file'?: string;
  };
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        name: { type: 'string' },
        role: { type: 'string' },
        namespace: { type: 'string' },
        tags: { type: 'string' },
        expires: { type: 'string' },
        'token-file': { type: 'string' },
      },
    }));
  } catch (e) {
    process.stderr.write(`tagflow-api keys: ${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    return 2;
  }
  const problems: string[] = [];
  if (!values.name || !LIMITS.keyNamePattern.test(values.name))
    problems.push('--name is required: 1-128 characters of letters, digits, space and _.:@-');
  if (!ROLES.includes(values.role as Role)) problems.push(`--role must be one of ${ROLES.join(', ')}`);
  if (
    values.namespace !== undefined &&
    !(NAMESPACE_PATTERN.test(values.namespace) || (values.namespace === '*' && values.role === 'admin'))
  ) {
    problems.push('--namespace must be 1-63 characters of a-z, 0-9 and - (or * for an admin key)');
  }
  const tags =
    values.tags === undefined
      ? ['*']
      : values.tags
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean);
  if (tags.length === 0 || tags.some((t) => t.length > LIMITS.tagMaxLength || !LIMITS.tagGrantPattern.test(t)))
    problems.push('--tags must be tags, prefixes ending in *, or *, separated by commas');
  const expires = values.expires === undefined ? null : Date.parse(values.expires);
  if (expires !== null && (Number.isNaN(expires) || expires <= Date.now()))
    problems.push('--expires must be an ISO-8601 time in the future');
  if (problems.length > 0) {
    process.stderr.write(`tagflow-api keys: ${problems.join('; ')}\n${USAGE}\n`);
    return 2;
  }
  const db = new Database(createDataSource(process.env.DATABASE_URL || 'sqlite:./data/tagflow.db'));
  await db.initialize();
  try {
    const file = values['token-file'];
    const token = file ? tokenInFile(file) : newToken();
    const existing = await db.read().keys.byHash(tokenHash(token));
    if (existing) {
      if (existing.revoked_at !== null) {
        process.stderr.write(
          `tagflow-api keys: the key with the token of ${file} (${existing.name}, ${existing.id}) is revoked; remove ${file} to make a new one\n`,
        );
        return 1;
      }
      process.stderr.write(
        `the key ${existing.name} (${existing.id}) already has the token of ${file}; left as it is\n`,
      );
      return 0;
    }
    const key = await insertKey(
      db,
      { name: values.name!, role: values.role as Role, namespace: values.namespace, tags, expires_at: expires },
      token,
    );
    const grants = `${key.namespace === '*' ? ' for every namespace' : ` in namespace ${key.namespace}`}${granted(tags, '*') ? '' : `, granted ${tags.join(', ')}`}`;
    if (file) {
      process.stderr.write(`created ${key.role} key ${key.name} (${key.id})${grants}; its token is in ${file}\n`);
    } else {
      process.stderr.write(
        `created ${key.role} key ${key.name} (${key.id})${grants}; its token follows, shown this once\n`,
      );
      process.stdout.write(`${token}\n`);
    }
    return 0;
  } finally {
    await db.close();
  }
}

/** The token kept in `file`, or a new one written there (mode 0600, never through a link). Refuses a file others may read. */
function tokenInFile(file: string): string {
  let st;
  try {
    st = lstatSync(file);
  } catch {
    const token = newToken();
    writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
    return token;
  }
  if (!st.isFile()) throw new Error(`${file} is not a plain file`);
  if ((st.mode & 0o077) !== 0)
    throw new Error(`${file} can be read by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid())
    throw new Error(`${file} belongs to another user`);
  const token = readFileSync(file, 'utf8').trim();
  if (!LIMITS.keyTokenPattern.test(token)) throw new Error(`${file} does not hold a tfk_ token`);
  return token;
}
