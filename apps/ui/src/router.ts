import { useEffect, useState } from 'react';

/**
 * Pages live in the URL's fragment (`#/workflows/ID`), so a link can be shared and the
 * API serves one file for all of them. Only ids go in the URL, never the key.
 */
export type Route =
  | { page: 'workflows' }
  | { page: 'workflow'; id: string; tab: 'graph' | 'tasks' | 'data' | 'events' }
  | { page: 'task'; id: string }
  | { page: 'workers' }
  | { page: 'schedules' };

const TABS = ['graph', 'tasks', 'data', 'events'] as const;

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'workflows' && parts[1]) {
    const tab = TABS.find((t) => t === parts[2]) ?? 'graph';
    return { page: 'workflow', id: parts[1], tab };
  }
  if (parts[0] === 'tasks' && parts[1]) return { page: 'task', id: parts[1] };
  if (parts[0] === 'workers') return { page: 'workers' };
  if (parts[0] === 'schedules') return { page: 'schedules' };
  return { page: 'workflows' };
}

export const href = {
  workflows: () => '#/workflows',
  workflow: (id: string, tab: 'graph' | 'tasks' | 'data' | 'events' = 'graph') =>
    `#/workflows/${encodeURIComponent(id)}${tab === 'graph' ? '' : `/${tab}`}`,
  task: (id: string) => `#/tasks/${encodeURIComponent(id)}`,
  workers: () => '#/workers',
  schedules: () => '#/schedules',
};

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
