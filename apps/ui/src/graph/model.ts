import { collectReferences } from '@tagflow/domain/references.js';

/** The fields of a task the graph draws. */
export interface GraphTask {
  id: string;
  name: string;
  kind: 'task' | 'handler' | 'revert';
  tags: string[];
  state: string;
  requires: string[];
  requires_tags: string[];
  produces: string[];
  input: unknown;
  parent_task_id: string | null;
}

export type EdgeKind = 'requires' | 'tag' | 'data' | 'handler';

export type GraphNode =
  | { type: 'task'; id: string; task: GraphTask }
  /** Tasks drawn as one box: their count by state. */
  | { type: 'cluster'; id: string; label: string; size: number; counts: Record<string, number> }
  /** A `requires_tags` selector: its current members point at it, it points at the tasks that wait for it. */
  | { type: 'tag'; id: string; tag: string; members: number }
  /** A data key: its producers point at it, it points at its readers. */
  | { type: 'data'; id: string; key: string; written: boolean };

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  kind: EdgeKind;
  /** How many task-to-task dependencies this edge stands for (> 1 between groups). */
  count: number;
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Some tasks are drawn as groups. */
  grouped: boolean;
  /** Changes only when nodes or edges come or go (not when a state changes): the layout's key. */
  shapeKey: string;
}

export type Grouping = 'auto' | 'none' | 'name' | 'tag' | 'state';

export interface GraphOptions {
  /** Data keys already written. */
  written: ReadonlySet<string>;
  /** Above this many task nodes, tasks are grouped. */
  maxNodes: number;
  grouping: Grouping;
  /** Groups the user opened: their tasks are drawn one by one. */
  expanded: ReadonlySet<string>;
}

interface Reads {
  tasks: string[];
  data: string[];
}

/** A task's input never changes once added: its references are read once. */
const readsCache = new WeakMap<object, Reads>();

/** What a task reads: task outputs by name and data keys, from its input's references. */
export function readsOf(task: Pick<GraphTask, 'input'>): Reads {
  const cacheable = typeof task.input === 'object' && task.input !== null;
  const cached = cacheable ? readsCache.get(task.input as object) : undefined;
  if (cached) return cached;
  const { refs } = collectReferences(task.input);
  const tasks = new Set<string>();
  const data = new Set<string>();
  for (const r of refs) {
    if (r.kind === 'task') tasks.add(r.task);
    else if (r.kind === 'data') data.add(r.key);
  }
  const reads = { tasks: [...tasks], data: [...data] };
  if (cacheable) readsCache.set(task.input as object, reads);
  return reads;
}

/** `web-0017.restart` → `web-#.restart`: tasks made in a loop share a pattern. */
export function namePattern(name: string): string {
  return name.replace(/\d+/g, '#');
}

type KeyOf = (t: GraphTask) => string;

const KEYS: Record<Exclude<Grouping, 'auto' | 'none'>, KeyOf> = {
  name: (t) => `name:${namePattern(t.name)}`,
  tag: (t) => `tag:${t.tags.length > 0 ? [...t.tags].sort().join(',') : '(untagged)'}`,
  state: (t) => `state:${t.state}`,
};

/** The id of the group of `kind` (the part of a group id before its value) a task falls in. */
export function groupIdOf(t: GraphTask, groupId: string): string {
  const kind = groupId.slice('group:'.length, groupId.indexOf(':', 'group:'.length)) as keyof typeof KEYS;
  const key = KEYS[kind] as KeyOf | undefined;
  return key ? `group:${key(t)}` : '';
}

function groupLabel(key: string): string {
  return key.slice(key.indexOf(':') + 1);
}

/**
 * How tasks are gathered when there are too many to draw: `auto` tries name patterns,
 * then tag sets, then states, and takes the first that leaves few enough boxes.
 */
function chooseKey(tasks: GraphTask[], opts: GraphOptions): KeyOf | null {
  if (opts.grouping === 'none') return null;
  if (opts.grouping !== 'auto') return KEYS[opts.grouping];
  if (tasks.length <= opts.maxNodes) return null;
  for (const key of [KEYS.name, KEYS.tag]) {
    const groups = new Set(tasks.map(key));
    if (groups.size <= opts.maxNodes / 2) return key;
  }
  return KEYS.state;
}

/**
 * The workflow as a graph: tasks (or groups of them), tag selectors and data keys as
 * nodes; `requires` (and task references), tag membership, data flow and error
 * handlers as edges. Linear in tasks plus dependencies: a tag selector is one node, so
 * a selector with many members and many dependents costs members + dependents edges.
 */
export function buildGraph(tasks: GraphTask[], opts: GraphOptions): Graph {
  const key = chooseKey(tasks, opts);
  const groupOf = new Map<string, string>();
  const nodes: GraphNode[] = [];
  const groups = new Map<string, Extract<GraphNode, { type: 'cluster' }>>();
  const keys = key ? tasks.map((t) => `group:${key(t)}`) : null;
  const sizes = new Map<string, number>();
  for (const k of keys ?? []) sizes.set(k, (sizes.get(k) ?? 0) + 1);
  for (const [i, t] of tasks.entries()) {
    const k = keys?.[i];
    // A group of one is drawn as its task.
    if (k && !opts.expanded.has(k) && sizes.get(k)! > 1) {
      let g = groups.get(k);
      if (!g) {
        g = { type: 'cluster', id: k, label: groupLabel(k.slice('group:'.length)), size: 0, counts: {} };
        groups.set(k, g);
        nodes.push(g);
      }
      g.size++;
      g.counts[t.state] = (g.counts[t.state] ?? 0) + 1;
      groupOf.set(t.id, k);
    } else {
      nodes.push({ type: 'task', id: t.id, task: t });
    }
  }
  const at = (taskId: string) => groupOf.get(taskId) ?? taskId;

  const edges = new Map<string, GraphEdge>();
  const link = (source: string, target: string, kind: EdgeKind) => {
    if (source === target) return;
    const id = `${kind}:${source}->${target}`;
    const e = edges.get(id);
    if (e) e.count++;
    else edges.set(id, { id, source, target, kind, count: 1 });
  };

  const byName = new Map<string, GraphTask>();
  const byTag = new Map<string, GraphTask[]>();
  const producers = new Map<string, GraphTask[]>();
  for (const t of tasks) {
    byName.set(t.name, t);
    for (const tag of t.tags) (byTag.get(tag) ?? byTag.set(tag, []).get(tag)!).push(t);
    for (const k of t.produces) (producers.get(k) ?? producers.set(k, []).get(k)!).push(t);
  }

  const tagNodes = new Set<string>();
  const dataNodes = new Set<string>();
  for (const t of tasks) {
    const reads = readsOf(t);
    for (const name of new Set([...t.requires, ...reads.tasks])) {
      const dep = byName.get(name);
      if (dep) link(at(dep.id), at(t.id), 'requires');
    }
    for (const tag of t.requires_tags) {
      const hub = `tag:${tag}`;
      if (!tagNodes.has(hub)) {
        tagNodes.add(hub);
        const members = byTag.get(tag) ?? [];
        nodes.push({ type: 'tag', id: hub, tag, members: members.length });
        for (const m of members) link(at(m.id), hub, 'tag');
      }
      link(hub, at(t.id), 'tag');
    }
    for (const k of reads.data) {
      const dn = `data:${k}`;
      if (!dataNodes.has(dn)) {
        dataNodes.add(dn);
        nodes.push({ type: 'data', id: dn, key: k, written: opts.written.has(k) });
        for (const p of producers.get(k) ?? []) link(at(p.id), dn, 'data');
      }
      link(dn, at(t.id), 'data');
    }
    if (t.parent_task_id && t.kind !== 'task') link(at(t.parent_task_id), at(t.id), 'handler');
  }
  // A selector's member that also waits on it (it never waits for itself) would draw a loop.
  for (const [id, e] of edges)
    if (e.kind === 'tag' && edges.has(`tag:${e.target}->${e.source}`) && e.source.startsWith('tag:')) edges.delete(id);

  const edgeList = [...edges.values()];
  const shapeKey = `${nodes.map((n) => n.id).join('|')}#${edgeList.map((e) => e.id).join('|')}`;
  return { nodes, edges: edgeList, grouped: groups.size > 0, shapeKey };
}
