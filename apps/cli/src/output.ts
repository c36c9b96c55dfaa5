import Table from 'cli-table3';
import { stringify } from 'yaml';

export type Format = 'table' | 'json' | 'yaml';

/** Writes to stdout as it is (no newline added). */
export const out = (s: string): void => void process.stdout.write(s);

/** Prints `value` for scripts (json, yaml) or as a table of `columns` for people. */
export function print(
  format: Format,
  value: unknown,
  rows: () => { head: string[]; rows: string[][] },
  out: (s: string) => void = (s) => process.stdout.write(s),
): void {
  if (format === 'json') return out(`${JSON.stringify(value, null, 2)}\n`);
  if (format === 'yaml') return out(stringify(value));
  const { head, rows: body } = rows();
  if (body.length === 0) return out('(none)\n');
  const table = new Table({
    head,
    style: { head: [], border: [] },
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
  });
  table.push(...body);
  out(
    `${table
      .toString()
      .split('\n')
      .map((l) => l.replace(/^ /, '').trimEnd())
      .join('\n')}\n`,
  );
}

/** `2026-12-01T10:00:00.000Z` → `2026-12-01 10:00:00`; '-' for none. */
export function when(iso: string | null | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-';
}

/** Task counts as `3 SUCCESS, 1 RUNNING` (only those above zero). */
export function counts(c: Record<string, number> | undefined): string {
  return (
    Object.entries(c ?? {})
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `${n} ${s}`)
      .join(', ') || '-'
  );
}
