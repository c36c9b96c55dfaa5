import { useEffect, useMemo, useState } from 'react';
import { QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { clearSession, clientFor, isUnauthorized, loadSession, onUnauthorized, type Session } from './session';
import { href, useRoute } from './router';
import { SignIn } from './pages/SignIn';
import { WorkflowsPage } from './pages/WorkflowsPage';
import { WorkflowPage } from './pages/WorkflowPage';
import { TaskPage } from './pages/TaskPage';
import { WorkersPage } from './pages/WorkersPage';
import { SchedulesPage } from './pages/SchedulesPage';

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const [reason, setReason] = useState<string | null>(null);
  const signOut = (why: string | null) => {
    clearSession();
    setReason(why);
    setSession(null);
  };
  useEffect(() => onUnauthorized(() => signOut('The API no longer accepts this key: sign in again.')), []);
  const queries = useMemo(
    () =>
      new QueryClient({
        // A key revoked or expired while the page is open sends the user back to sign in.
        queryCache: new QueryCache({
          onError: (e) => isUnauthorized(e) && signOut('The API no longer accepts this key: sign in again.'),
        }),
        defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: true } },
      }),
    [],
  );
  if (!session)
    return (
      <SignIn
        reason={reason}
        onSignedIn={(s) => {
          setReason(null);
          setSession(s);
        }}
      />
    );
  return (
    <QueryClientProvider client={queries}>
      <Shell
        session={session}
        onSignOut={() => {
          queries.clear();
          signOut(null);
        }}
      />
    </QueryClientProvider>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const route = useRoute();
  const client = useMemo(() => clientFor(session), [session]);
  return (
    <div className="app">
      <header className="top">
        <a className="brand" href={href.workflows()}>
          Tagflow
        </a>
        <nav>
          <a
            href={href.workflows()}
            className={
              route.page === 'workflows' || route.page === 'workflow' || route.page === 'task' ? 'active' : undefined
            }
          >
            Workflows
          </a>
          <a href={href.workers()} className={route.page === 'workers' ? 'active' : undefined}>
            Workers
          </a>
          <a href={href.schedules()} className={route.page === 'schedules' ? 'active' : undefined}>
            Schedules
          </a>
        </nav>
        <span className="spacer" />
        {session.namespace ? <span className="muted small">namespace {session.namespace}</span> : null}
        <button type="button" className="link" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      {route.page === 'workflows' ? <WorkflowsPage client={client} /> : null}
      {route.page === 'workflow' ? <WorkflowPage key={route.id} client={client} id={route.id} tab={route.tab} /> : null}
      {route.page === 'task' ? <TaskPage key={route.id} client={client} id={route.id} /> : null}
      {route.page === 'workers' ? <WorkersPage client={client} /> : null}
      {route.page === 'schedules' ? <SchedulesPage client={client} /> : null}
    </div>
  );
}
