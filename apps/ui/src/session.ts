import { TagflowApiError, TagflowClient } from '@tagflow/client';

/** What the browser keeps for this tab only: gone when the tab closes. */
export interface Session {
  /** Empty when the API has no keys yet (it is then open on loopback only). */
  token: string;
  namespace: string;
}

const STORAGE_KEY = 'tagflow.session';

export function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Partial<Session>;
    return typeof s.token === 'string' && typeof s.namespace === 'string'
      ? { token: s.token, namespace: s.namespace }
      : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session): void {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(s));
}

export function clearSession(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** The typed client against the API that served this page. */
export function clientFor(s: Session): TagflowClient {
  return new TagflowClient({
    url: window.location.origin,
    token: s.token || undefined,
    namespace: s.namespace || undefined,
    timeoutMs: 15_000,
    // A person is waiting: give up on an outage sooner than a worker would.
    retry: { attempts: 3, maxMs: 2_000 },
  });
}

/** Checks a key by reading one workflow: 401 bad key, 403 a key that cannot read (a worker's). */
export async function signIn(s: Session): Promise<string | null> {
  try {
    await clientFor(s).listWorkflows({ limit: 1 });
    return null;
  } catch (e) {
    if (e instanceof TagflowApiError && e.status === 401)
      return s.token ? 'The API did not accept this key (unknown, revoked or expired).' : 'This API needs a key.';
    if (e instanceof TagflowApiError && e.status === 403)
      return `This key may not read workflows here: ${apiMessage(e)}`;
    return errorText(e);
  }
}

/** The API's own message (it names the field or the rule), without the request line. */
function apiMessage(e: TagflowApiError): string {
  return typeof e.body?.message === 'string' ? e.body.message : e.message;
}

export function errorText(e: unknown): string {
  if (e instanceof TagflowApiError) return `${e.status}: ${apiMessage(e)}`;
  return e instanceof Error ? e.message : String(e);
}

export function isUnauthorized(e: unknown): boolean {
  return e instanceof TagflowApiError && e.status === 401;
}

const UNAUTHORIZED = 'tagflow:unauthorized';

/** A call outside the query cache met a 401 (the key was revoked or expired): back to sign-in. */
export function reportUnauthorized(): void {
  window.dispatchEvent(new Event(UNAUTHORIZED));
}

export function onUnauthorized(listener: () => void): () => void {
  window.addEventListener(UNAUTHORIZED, listener);
  return () => window.removeEventListener(UNAUTHORIZED, listener);
}
