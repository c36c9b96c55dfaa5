import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from './config.js';

/**
 * The worker's key, from a file only its user can read (`--token-file`) or from its
 * standard input (`--token-stdin`): never from its command line or its environment,
 * which its tasks (same user) could read through /proc.
 */
export async function readToken(
  source: { tokenFile?: string; tokenStdin: boolean },
  stdin: NodeJS.ReadableStream = process.stdin,
): Promise<string | undefined> {
  if (source.tokenFile !== undefined) {
    let st;
    try {
      st = statSync(source.tokenFile);
    } catch (e) {
      throw new ConfigError(
        `--token-file ${source.tokenFile}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
      );
    }
    if (!st.isFile()) throw new ConfigError(`--token-file ${source.tokenFile} is not a file`);
    if ((st.mode & 0o077) !== 0) {
      throw new ConfigError(
        `--token-file ${source.tokenFile} can be read by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`,
      );
    }
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
      throw new ConfigError(`--token-file ${source.tokenFile} belongs to another user (uid ${st.uid})`);
    }
    return check(readFileSync(source.tokenFile, 'utf8'), `--token-file ${source.tokenFile}`);
  }
  if (source.tokenStdin) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer));
    return check(Buffer.concat(chunks).toString('utf8'), '--token-stdin');
  }
  return undefined;
}

function check(raw: string, from: string): string {
  const token = raw.trim();
  if (!/^[\x21-\x7e]{1,512}$/.test(token))
    throw new ConfigError(`${from}: expected one token (a line of printable characters)`);
  return token;
}
