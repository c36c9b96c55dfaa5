import { describe, expect, it } from '@jest/globals';
import { buildGraph, namePattern, readsOf, type GraphOptions, type GraphTask } from './model';

function task(name: string, more: Partial<GraphTask> = {}): GraphTask {
  return {
    id: `id-${name}`,
    name,
    kind: 'task',
    tags: [],
    state: 'WAITING',
    requires: [],
    requires_tags: [],
    produces: [],
    input: {},
    parent_task_id: null,
    ...more,
  };
}

const opts = (more: Partial<GraphOptions> = {}): GraphOptions => ({
  written: new Set(),
  maxNodes: 300,
  grouping: 'auto',
  expanded: new Set(),
  ...more,
});
const edgeSet = (g: ReturnType<typeof buildGraph>) =>
  g.edges.map((e) => `${e.kind}:${e.source}->${e.target}${e.count > 1 ? `x${e.count}` : ''}`).sort();

describe('the workflow graph', () => {
  it('draws requires, task references, tag selectors through their members, data keys between producer and readers, and handlers', () => {
    const g = buildGraph(
      [
        task('build', { produces: ['cfg'] }),
        task('web1', { tags: ['web'], requires: ['build'] }),
        task('web2', { tags: ['web'], input: { ip: '{{ tasks.build.output.ip }}' } }),
        task('lb', { requires_tags: ['web'], input: { c: 'x {{ data.cfg }} y', other: '{{ not.a.reference }}' } }),
        task('notify', { kind: 'handler', parent_task_id: 'id-lb' }),
      ],
      opts({ written: new Set(['cfg']) }),
    );
    expect(edgeSet(g)).toEqual([
      'data:data:cfg->id-lb',
      'data:id-build->data:cfg',
      'handler:id-lb->id-notify',
      'requires:id-build->id-web1',
      'requires:id-build->id-web2',
      'tag:id-web1->tag:web',
      'tag:id-web2->tag:web',
      'tag:tag:web->id-lb',
    ]);
    expect(g.nodes.find((n) => n.id === 'data:cfg')).toMatchObject({ type: 'data', written: true });
    expect(g.nodes.find((n) => n.id === 'tag:web')).toMatchObject({ type: 'tag', members: 2 });
    expect(g.grouped).toBe(false);
  });

  it('gathers 10,000 tasks into a few groups by name pattern, with counted edges, and draws an opened group task by task', () => {
    const tasks = [task('prepare', { state: 'SUCCESS' })];
    for (let i = 0; i < 10_000; i++)
      tasks.push(
        task(`node-${i}.${i % 2 ? 'deploy' : 'check'}`, {
          requires: ['prepare'],
          state: i < 10 ? 'RUNNING' : 'WAITING',
        }),
      );
    const g = buildGraph(tasks, opts());
    expect(g.grouped).toBe(true);
    expect(g.nodes.map((n) => n.id).sort()).toEqual([
      'group:name:node-#.check',
      'group:name:node-#.deploy',
      'id-prepare',
    ]);
    expect(g.nodes.find((n) => n.id === 'group:name:node-#.check')).toMatchObject({
      size: 5000,
      counts: { RUNNING: 5, WAITING: 4995 },
    });
    expect(edgeSet(g)).toEqual([
      'requires:id-prepare->group:name:node-#.checkx5000',
      'requires:id-prepare->group:name:node-#.deployx5000',
    ]);

    const few = tasks.slice(0, 401);
    const opened = buildGraph(few, opts({ expanded: new Set(['group:name:node-#.check']) }));
    expect(opened.nodes.filter((n) => n.type === 'task')).toHaveLength(201); // prepare and the 200 checks
    expect(opened.nodes.filter((n) => n.type === 'cluster')).toHaveLength(1);
  });

  it('falls back to tags, then states, when names do not repeat', () => {
    const tasks = Array.from({ length: 1000 }, (_, i) =>
      task(`t${String.fromCharCode(97 + (i % 26))}${i.toString(36)}x`, { tags: [`rack-${i % 4}`] }),
    );
    const byTag = buildGraph(tasks, opts());
    expect(byTag.nodes.map((n) => n.id).sort()).toEqual([
      'group:tag:rack-0',
      'group:tag:rack-1',
      'group:tag:rack-2',
      'group:tag:rack-3',
    ]);
    const unique = Array.from({ length: 1000 }, (_, i) =>
      task(`u${i.toString(36)}z`, { tags: [`t${i}`], state: i % 2 ? 'SUCCESS' : 'ERROR' }),
    );
    expect(
      buildGraph(unique, opts())
        .nodes.map((n) => n.id)
        .sort(),
    ).toEqual(['group:state:ERROR', 'group:state:SUCCESS']);
  });

  it('keeps its shape key when only states change, and changes it when a task comes', () => {
    const a = buildGraph([task('a'), task('b', { requires: ['a'] })], opts());
    const b = buildGraph([task('a', { state: 'SUCCESS' }), task('b', { requires: ['a'], state: 'RUNNING' })], opts());
    const c = buildGraph([task('a'), task('b', { requires: ['a'] }), task('c')], opts());
    expect(b.shapeKey).toBe(a.shapeKey);
    expect(c.shapeKey).not.toBe(a.shapeKey);
  });

  it('reads references the way the API does', () => {
    expect(
      readsOf({
        input: {
          a: ['{{ data.x.y }}', { b: '{{tasks.my.task.output.ip}}' }],
          c: '{{ workflow.input.z }}',
          d: '{{ data.bad key }}',
        },
      }),
    ).toEqual({ tasks: ['my.task'], data: ['x.y'] });
    expect(namePattern('web-017.restart-2')).toBe('web-#.restart-#');
  });
});
