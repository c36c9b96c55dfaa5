import { Option, type Command } from 'commander';
import { allPages, type KeyRole } from '@tagflow/client';
import { out, print, when } from '../output.js';
import type { GlobalOptions } from './global-options.js';

/** `tagflow keys ...`: API keys (admin). */
export function addKeysCommands(program: Command, { client, format }: GlobalOptions): void {
  const keys = program.command('keys').description('API keys (admin)');
  keys
    .command('create')
    .requiredOption('--name <name>')
    .addOption(new Option('--role <role>').choices(['admin', 'operator', 'reader', 'worker']).makeOptionMandatory())
    .option('--tags <grants>', 'tag grants: tags, prefixes ending in *, or *', (v: string) =>
      v
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean),
    )
    .option('--key-namespace <ns>', 'the namespace the key acts in')
    .option('--expires-at <iso>')
    .action(async (o: { name: string; role: KeyRole; tags?: string[]; keyNamespace?: string; expiresAt?: string }) => {
      const key = await client().createKey({
        name: o.name,
        role: o.role,
        tags: o.tags,
        namespace: o.keyNamespace,
        expires_at: o.expiresAt,
      });
      if (format() === 'table')
        out(
          `key ${key.id} (${key.name}, ${key.role}, namespace ${key.namespace}); its token, shown once:\n${key.token}\n`,
        );
      else print(format(), key, () => ({ head: [], rows: [] }));
    });
  keys.command('list').action(async () => {
    const tf = client();
    const list = await allPages((q) => tf.listKeys(q));
    print(format(), list, () => ({
      head: ['ID', 'NAME', 'ROLE', 'NAMESPACE', 'TAGS', 'EXPIRES', 'REVOKED'],
      rows: list.map((k) => [
        k.id,
        k.name,
        k.role,
        k.namespace,
        k.tags.join(',') || '-',
        when(k.expires_at),
        when(k.revoked_at),
      ]),
    }));
  });
  keys.command('revoke <id>').action(async (id: string) => {
    await client().revokeKey(id);
    if (format() === 'table') out(`key ${id} revoked\n`);
  });
}
