import { describe, expect, it } from '@jest/globals';
import {
  describeCycle,
  evaluateReadiness,
  findCycle,
  reverseDependencyOrder,
  TagSelection,
  type DependencyView,
  type GraphTask,
} from './dependencies.js';
import type { TaskState } from './states.js';

const view = (name: string, state: TaskState, extra: Partial<DependencyView> = {}): DependencyView => ({
  id: `id-${name}`,
  name,
  state,
  handled: false,
  handling: false,
  errorCode: null,
  ...extra,
});
const task = (requires: string[] = [], requires_tags: string[] = [], id = 'id-self') => ({
  id,
  requires,
  requires_tags,
});
const byName = (...views: DependencyView[]) => new Map(views.map((v) => [v.name, v]));

describe('evaluateReadiness', () => {
  it('is ready when every named dependency succeeded', () => {
    expect(
      evaluateReadiness({
        task: task(['a', 'b']),
        byName: byName(view('a', 'SUCCESS'), view('b', 'SUCCESS')),
        tags: TagSelection.none,
        sealed: false,
      }).kind,
    ).toBe('ready');
  });

  it('waits while a dependency is still open, and while a handler runs', () => {
    expect(
      evaluateReadiness({
        task: task(['a']),
        byName: byName(view('a', 'RUNNING')),
        tags: TagSelection.none,
        sealed: false,
      }).kind,
    ).toBe('waiting');
    expect(
      evaluateReadiness({
        task: task(['a']),
        byName: byName(view('a', 'ERROR', { handling: true })),
        tags: TagSelection.none,
        sealed: false,
      }).kind,
    ).toBe('waiting');
  });

  it('treats a handled ERROR as done and an unhandled one as dead', () => {
    expect(
      evaluateReadiness({
        task: task(['a']),
        byName: byName(view('a', 'ERROR', { handled: true })),
        tags: TagSelection.none,
        sealed: false,
      }).kind,
    ).toBe('ready');
    const dead = evaluateReadiness({
      task: task(['a']),
      byName: byName(view('a', 'ERROR')),
      tags: TagSelection.none,
      sealed: false,
    });
    expect(dead).toMatchObject({ kind: 'dead', code: 'DEPENDENCY_FAILED' });
  });

  it('tells a cancel upstream from a failure upstream', () => {
    expect(
      evaluateReadiness({
        task: task(['a']),
        byName: byName(view('a', 'CANCELLED')),
        tags: TagSelection.none,
        sealed: false,
      }),
    ).toMatchObject({ code: 'DEPENDENCY_CANCELLED' });
    expect(
      evaluateReadiness({
        task: task(['a']),
        byName: byName(view('a', 'SKIPPED', { errorCode: 'DEPENDENCY_CANCELLED' })),
        tags: TagSelection.none,
        sealed: false,
      }),
    ).toMatchObject({ code: 'DEPENDENCY_CANCELLED' });
    expect(
      evaluateReadiness({
        task: task(['a']),
        byName: byName(view('a', 'SKIPPED', { errorCode: 'WORKFLOW_FAILED' })),
        tags: TagSelection.none,
        sealed: false,
      }),
    ).toMatchObject({ code: 'DEPENDENCY_FAILED' });
  });

  it('waits for every member of a tag selector but never for itself', () => {
    const self = { ...view('self', 'WAITING'), id: 'id-self' };
    expect(
      evaluateReadiness({
        task: task([], ['web']),
        byName: new Map(),
        tags: TagSelection.of([self, view('w1', 'SUCCESS')]),
        sealed: false,
      }).kind,
    ).toBe('ready');
    expect(
      evaluateReadiness({
        task: task([], ['web']),
        byName: new Map(),
        tags: TagSelection.of([view('w1', 'SUCCESS'), view('w2', 'READY')]),
        sealed: true,
      }).kind,
    ).toBe('waiting');
  });

  it('summarizes tag members once: a member in two selected tags counts once, a dead one wins over pending ones', () => {
    const self = { ...view('self', 'WAITING'), id: 'id-self' };
    const shared = TagSelection.of([self, view('w1', 'SUCCESS'), view('w1', 'SUCCESS'), self]);
    expect(shared.size).toBe(2);
    const other = { ...task([], ['web']), id: 'id-other' };
    // The same summary serves every selecting task: for `self` only w1 counts, for another task `self` is pending.
    expect(evaluateReadiness({ task: task([], ['web']), byName: new Map(), tags: shared, sealed: false }).kind).toBe(
      'ready',
    );
    expect(evaluateReadiness({ task: other, byName: new Map(), tags: shared, sealed: false }).kind).toBe('waiting');
    const withDead = evaluateReadiness({
      task: task([], ['web']),
      byName: new Map(),
      tags: TagSelection.of([view('w2', 'RUNNING'), view('w3', 'CANCELLED')]),
      sealed: true,
    });
    expect(withDead).toMatchObject({ kind: 'dead', code: 'DEPENDENCY_CANCELLED' });
  });

  it('holds an empty tag selector until the workflow is sealed', () => {
    expect(
      evaluateReadiness({ task: task([], ['db']), byName: new Map(), tags: TagSelection.none, sealed: false }).kind,
    ).toBe('waiting');
    expect(
      evaluateReadiness({ task: task([], ['db']), byName: new Map(), tags: TagSelection.none, sealed: true }).kind,
    ).toBe('ready');
  });
});

const g = (name: string, o: Partial<GraphTask> = {}): GraphTask => ({
  name,
  tags: [],
  requires: [],
  requires_tags: [],
  waiting: true,
  ...o,
});

describe('findCycle', () => {
  it('finds none in a DAG', () => {
    expect(findCycle([g('a'), g('b', { requires: ['a'] }), g('c', { requires: ['a', 'b'] })])).toBeNull();
  });

  it('names the path of a cycle by name', () => {
    const cycle = findCycle([g('a', { requires: ['c'] }), g('b', { requires: ['a'] }), g('c', { requires: ['b'] })]);
    expect(cycle).not.toBeNull();
    expect(cycle![0]).toBe(cycle![cycle!.length - 1]);
    expect(new Set(cycle)).toEqual(new Set(['a', 'b', 'c']));
    expect(describeCycle(['a', 'b', 'a'])).toBe('dependency cycle: a -> b -> a');
  });

  it('finds a cycle through a tag selector and shows the tag', () => {
    const cycle = findCycle([g('a', { requires_tags: ['web'] }), g('b', { tags: ['web'], requires: ['a'] })]);
    expect(cycle).toEqual(['a', 'tag:web', 'b', 'a']);
  });

  it('does not see a cycle where a task selects a tag it carries itself', () => {
    expect(findCycle([g('a', { tags: ['web'], requires_tags: ['web'] }), g('b', { tags: ['web'] })])).toBeNull();
    // ...but does when another member waits for it.
    expect(
      findCycle([g('a', { tags: ['web'], requires_tags: ['web'] }), g('b', { tags: ['web'], requires: ['a'] })]),
    ).not.toBeNull();
  });

  it('ignores edges of tasks that are no longer waiting', () => {
    expect(findCycle([g('a', { requires: ['b'], waiting: false }), g('b', { requires: ['a'] })])).toBeNull();
  });

  it('accepts fine-grained cross dependencies that are not a cycle', () => {
    const tasks = [
      g('a1', { tags: ['A'] }),
      g('a2', { tags: ['A'], requires: ['a1'] }),
      g('a3', { tags: ['A'], requires: ['a2', 'b2'] }),
      g('b1', { tags: ['B'], requires: ['a1'] }),
      g('b2', { tags: ['B'], requires: ['b1'] }),
      g('b3', { tags: ['B'], requires: ['b2'] }),
    ];
    expect(findCycle(tasks)).toBeNull();
  });

  it('handles a long chain without recursion', () => {
    const chain = Array.from({ length: 50_000 }, (_, i) => g(`t${i}`, { requires: i ? [`t${i - 1}`] : [] }));
    expect(findCycle(chain)).toBeNull();
  });
});

describe('data dependencies', () => {
  it('waits for a missing key, and reports a deadlock once sealed with no producer left', () => {
    const base = { task: task(), byName: new Map(), tags: TagSelection.none };
    expect(evaluateReadiness({ ...base, sealed: false, data: { missing: ['k'], unproducible: ['k'] } }).kind).toBe(
      'waiting',
    );
    expect(evaluateReadiness({ ...base, sealed: true, data: { missing: ['k'], unproducible: [] } }).kind).toBe(
      'waiting',
    );
    expect(evaluateReadiness({ ...base, sealed: true, data: { missing: ['k', 'j'], unproducible: ['j'] } })).toEqual({
      kind: 'deadlock',
      code: 'DEADLOCK',
      message: 'waits for data key j that no unfinished task of the sealed workflow produces',
    });
    expect(evaluateReadiness({ ...base, sealed: true, data: { missing: [], unproducible: [] } }).kind).toBe('ready');
  });

  it('finds a cycle through a data key and its producer', () => {
    expect(
      findCycle([
        g('reader', { data_requires: ['k'], requires: [] }),
        g('writer', { produces: ['k'], requires: ['reader'] }),
      ]),
    ).toEqual(['reader', 'data:k', 'writer', 'reader']);
    expect(findCycle([g('reader', { data_requires: ['k'] }), g('writer', { produces: ['k'] })])).toBeNull();
  });
});

describe('reverseDependencyOrder', () => {
  it('reverts dependents first, also through tasks without a revert', () => {
    const all = [
      { name: 'db', tags: [], requires: [], requires_tags: [] },
      { name: 'schema', tags: [], requires: ['db'], requires_tags: [] },
      { name: 'app', tags: ['app'], requires: ['schema'], requires_tags: [] },
      { name: 'lb', tags: [], requires: [], requires_tags: ['app'] },
    ];
    const order = reverseDependencyOrder(all, new Set(['db', 'app', 'lb']));
    expect(order.get('db')).toEqual(['app']); // through schema, which has no revert
    expect(order.get('app')).toEqual(['lb']);
    expect(order.get('lb')).toEqual([]);
  });
});
