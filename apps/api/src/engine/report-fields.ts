/** What a worker reports of an attempt besides its output or error. */
export interface ReportFields {
  stdout?: string | null;
  stderr?: string | null;
  exit_code?: number | null;
}

const LOG_TAIL = 64 * 1024;

/** Keeps the last 64 KiB of a log (cut on a character boundary). */
export function tail(text: string | null | undefined): string | null {
  if (text === null || text === undefined) return null;
  if (Buffer.byteLength(text) <= LOG_TAIL) return text;
  const buf = Buffer.from(text);
  return buf.subarray(buf.length - LOG_TAIL).toString('utf8').replace(/^\uFFFD+/, '');
}

/** The columns a report writes besides the outcome. */
export function reportSet(r: ReportFields): { stdout: string | null; stderr: string | null; exit_code: number | null } {
  return { stdout: tail(r.stdout), stderr: tail(r.stderr), exit_code: r.exit_code ?? null };
}
