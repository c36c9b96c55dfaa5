export interface OnErrorEntry<TSpec = unknown> {
  codes?: string[];
  run: TSpec[];
}

/**
 * The first entry whose codes contain the error code or the exit code (as a string),
 * or that names no codes at all. Undefined when none matches: the failure is unhandled.
 */
export function matchOnError<T>(
  entries: readonly OnErrorEntry<T>[],
  errorCode: string | null | undefined,
  exitCode: number | null | undefined,
): OnErrorEntry<T> | undefined {
  const keys = new Set<string>();
  if (errorCode !== null && errorCode !== undefined) keys.add(errorCode);
  if (exitCode !== null && exitCode !== undefined) keys.add(String(exitCode));
  return entries.find((entry) => !entry.codes || entry.codes.length === 0 || entry.codes.some((c) => keys.has(c)));
}
