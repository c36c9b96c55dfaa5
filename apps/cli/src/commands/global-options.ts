import type { Command } from 'commander';
import { TagflowClient } from '@tagflow/client';
import { connection, UsageError } from '../config.js';
import type { Format } from '../output.js';

/**
 * What every command takes from the global options (--url, --namespace, --config, -o).
 * Read when the command runs, not when it is declared: commander has parsed them by then.
 */
export interface GlobalOptions {
  client: () => TagflowClient;
  format: () => Format;
}

export function globalOptions(program: Command): GlobalOptions {
  return {
    client: () => {
      const opts = program.opts<{ url?: string; namespace?: string; config?: string }>();
      const c = connection(opts);
      return new TagflowClient({ url: c.url, token: c.token, namespace: c.namespace });
    },
    format: () => program.opts<{ output: Format }>().output,
  };
}

/** A count (--limit, --timeout, --attempt): a whole number above zero, else a usage error (exit 2). */
export function positive(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`"${v}" is not a positive whole number`);
  return n;
}
