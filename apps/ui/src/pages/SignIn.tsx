import { useState, type FormEvent } from 'react';
import { saveSession, signIn, type Session } from '../session';

/** An API key (admin, operator or reader), kept in this tab's session storage only. */
export function SignIn({ onSignedIn, reason }: { onSignedIn: (s: Session) => void; reason: string | null }) {
  const [token, setToken] = useState('');
  const [namespace, setNamespace] = useState('');
  const [error, setError] = useState<string | null>(reason);
  const [busy, setBusy] = useState(false);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const session = { token: token.trim(), namespace: namespace.trim() };
    setBusy(true);
    void signIn(session).then((problem) => {
      setBusy(false);
      if (problem) return setError(problem);
      saveSession(session);
      onSignedIn(session);
    });
  };
  return (
    <main className="signin">
      <form onSubmit={submit} className="card" aria-label="sign in">
        <h1>Tagflow</h1>
        <p className="muted">
          Sign in with an API key (admin, operator or reader). It stays in this tab and is sent only to this API.
        </p>
        <label>
          API key
          <input
            name="token"
            type="password"
            autoComplete="off"
            value={token}
            onChange={(e) => setToken(e.target.value)}
            placeholder="tfk_…"
            autoFocus
          />
        </label>
        <label>
          Namespace <span className="muted small">(only for a key of all namespaces)</span>
          <input
            name="namespace"
            value={namespace}
            onChange={(e) => setNamespace(e.target.value)}
            placeholder="default"
          />
        </label>
        {error ? (
          <div className="error" role="alert">
            {error}
          </div>
        ) : null}
        <button type="submit" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
