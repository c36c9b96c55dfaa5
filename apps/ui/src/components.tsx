import { useState, type ReactNode } from 'react';
import { TASK_STATES } from '@tagflow/domain/states.js';
import { errorText } from './session';

export function StateBadge({ state }: { state: string }) {
  return (
    <span className={`state state-${state}`} data-state={state}>
      {state}
    </span>
  );
}

/** Counts by state, in the states' order, leaving out zeros. */
export function Counts({ counts }: { counts: Partial<Record<string, number>> }) {
  const shown = TASK_STATES.filter((s) => (counts[s] ?? 0) > 0);
  if (shown.length === 0) return <span className="muted">no tasks</span>;
  return (
    <span className="counts">
      {shown.map((s) => (
        <span key={s} className={`count state-${s}`} title={s}>
          {counts[s]} {s.toLowerCase()}
        </span>
      ))}
    </span>
  );
}

/** JSON as text (React escapes it: nothing a task wrote is ever read as HTML). */
export function Json({ value, empty = '—' }: { value: unknown; empty?: string }) {
  if (value === null || value === undefined) return <span className="muted">{empty}</span>;
  return <pre className="json">{JSON.stringify(value, null, 2)}</pre>;
}

/** A page whose data has not come: why not, or that it is coming. */
export function PagePending({ error }: { error: unknown }) {
  return (
    <main className="page">
      <ErrorBox error={error} />
      {error ? null : <p className="muted">Loading…</p>}
    </main>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      {errorText(error)}
    </div>
  );
}

/** A button for a call that changes something: disabled while it runs, its refusal shown next to it. */
export function ActionButton({
  label,
  run,
  danger,
  disabled,
  confirm,
}: {
  label: string;
  run: () => Promise<unknown>;
  danger?: boolean;
  disabled?: boolean;
  confirm?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const onClick = () => {
    if (confirm && !window.confirm(confirm)) return;
    setBusy(true);
    setError(null);
    run().then(
      () => setBusy(false),
      (e: unknown) => {
        setBusy(false);
        setError(e);
      },
    );
  };
  return (
    <span className="action">
      <button type="button" className={danger ? 'danger' : undefined} disabled={busy || disabled} onClick={onClick}>
        {label}
      </button>
      {error ? (
        <span className="error inline" role="alert">
          {errorText(error)}
        </span>
      ) : null}
    </span>
  );
}

export function Ago({ at }: { at: string | null | undefined }) {
  if (!at) return <span className="muted">—</span>;
  const s = Math.round((Date.now() - Date.parse(at)) / 1000);
  const text =
    s < 60
      ? `${Math.max(s, 0)} s ago`
      : s < 3600
        ? `${Math.round(s / 60)} min ago`
        : s < 86_400
          ? `${Math.round(s / 3600)} h ago`
          : new Date(at).toLocaleString();
  return (
    <time dateTime={at} title={new Date(at).toLocaleString()}>
      {text}
    </time>
  );
}

export function Section({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="card">
      <header className="card-head">
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

export function Tags({ tags }: { tags: string[] }) {
  if (tags.length === 0) return <span className="muted">—</span>;
  return (
    <span className="tags">
      {tags.map((t) => (
        <span key={t} className="tag">
          {t}
        </span>
      ))}
    </span>
  );
}
