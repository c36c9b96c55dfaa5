/** What a worker reports of an attempt besides its output or error. */
export interface ReportFields {
  stdout?: string | null;
  stderr?: string | null;
  exit_code?: number | null;
}

const LOG_TAIL = 64 * 1024;

/**
 * Output as a text column can hold it: NUL (which `find -print0` and binary output write, and
 * PostgreSQL's text refuses) becomes U+FFFD.
 */
export function storableText(text: string): string {
  return text.includes('\u0000') ? text.replace(/\u0000/g, '\uFFFD') : text;
}

/** Keeps the last 64 KiB of a log (cut on a character boundary), storable. */
export function tail(raw: string | null | undefined): string | null {
  if (raw === null || raw === undefined) return null;
  const text = storableText(raw);
  if (Buffer.byteLength(text) <= LOG_TAIL) return text;
  const buf = Buffer.from(text);
  return buf
    .subarray(buf.length - LOG_TAIL)
    .toString('utf8')
    .replace(/^\uFFFD+/, '');
}

/** The columns a report writes besides the outcome. */
export function reportSet(r: ReportFields): { stdout: string | null; stderr: string | null; exit_code: number | null } {
  return { stdout: tail(r.stdout), stderr: tail(r.stderr), exit_code: r.exit_code ?? null };
}
