// What a failed `fetch` tells: whether the request cannot have left this machine (so it is
// safe to send again whatever it does), and a message for people that names the cause.

function causeCode(e: unknown): string | undefined {
  const cause = (e as { cause?: { code?: string } } | null)?.cause;
  return cause?.code;
}

export function wasNotSent(e: unknown): boolean {
  const code = causeCode(e);
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH';
}

export function describeNetworkError(e: unknown): string {
  // By name: an abort's DOMException may come from another realm (a test's VM), where it is no `Error`.
  const name = (e as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError')
    return name === 'TimeoutError' ? 'no answer in time' : 'aborted';
  const code = causeCode(e);
  return code
    ? `cannot reach the API (${code})`
    : `cannot reach the API (${e instanceof Error ? e.message : String(e)})`;
}
