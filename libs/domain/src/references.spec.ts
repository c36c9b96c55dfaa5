import { describe, expect, it } from '@jest/globals';
import {
  collectReferences,
  parseReference,
  readPath,
  resolveReferences,
  ResolutionError,
  type Lookup,
} from './references.js';

const sources = {
  tasks: {
    master: { ip: '10.0.0.5', ports: [5432, 5433], meta: { 'zone name': 'eu', empty: null } },
    'db.init': { ok: true },
  } as Record<string, unknown>,
  workflow: { env: 'prod', replicas: 3 },
  data: { 'cluster.node1.config': { heap: '2g' } } as Record<string, unknown>,
};
const lookup: Lookup = (ref) => {
  switch (ref.kind) {
    case 'task':
      return ref.task in sources.tasks
        ? readPath(sources.tasks[ref.task], ref.path)
        : { found: false, reason: `task ${ref.task} has no output` };
    case 'workflow':
      return readPath(sources.workflow, ref.path);
    case 'data':
      return ref.key in sources.data
        ? { found: true, value: sources.data[ref.key] }
        : { found: false, reason: `data key ${ref.key} is not written` };
  }
};

describe('input references', () => {
  it('parses the three forms and ignores other templates', () => {
    expect(parseReference('tasks.master.output.ip')).toMatchObject({ kind: 'task', task: 'master', path: ['ip'] });
    expect(parseReference('tasks.db.init.output')).toMatchObject({ kind: 'task', task: 'db.init', path: [] });
    expect(parseReference("tasks.master.output.meta['zone name']")).toMatchObject({ path: ['meta', 'zone name'] });
    expect(parseReference('workflow.input.env')).toMatchObject({ kind: 'workflow', path: ['env'] });
    expect(parseReference('data.cluster.node1.config')).toMatchObject({ kind: 'data', key: 'cluster.node1.config' });
    expect(parseReference('ansible_hostname')).toBeNull();
    expect(parseReference('tasks.master.ip')).toHaveProperty('error');
    expect(parseReference('data.bad key')).toHaveProperty('error');
  });

  it('collects references nested in objects and arrays', () => {
    const { refs, errors } = collectReferences({
      a: ['x {{ tasks.master.output.ip }}', { b: '{{ data.k1 }}' }],
      c: '{{ item }}',
      d: 3,
    });
    expect(refs.map((r) => r.kind).sort()).toEqual(['data', 'task']);
    expect(errors).toEqual([]);
  });

  it('keeps JSON types for a whole-string reference and text inside a longer string', () => {
    const out = resolveReferences(
      {
        ip: '{{ tasks.master.output.ip }}',
        ports: '{{tasks.master.output.ports}}',
        first: '{{ tasks.master.output.ports[0] }}',
        url: 'postgres://{{ tasks.master.output.ip }}:{{ tasks.master.output.ports[0] }}/app',
        nested: [{ env: '{{ workflow.input.env }}', n: '{{ workflow.input.replicas }}' }],
        cfg: '{{ data.cluster.node1.config }}',
        inline: 'cfg={{ data.cluster.node1.config }}',
        nothing: '{{ tasks.master.output.meta.empty }}',
        jinja: '{{ inventory_hostname }}',
      },
      lookup,
    );
    expect(out).toEqual({
      ip: '10.0.0.5',
      ports: [5432, 5433],
      first: 5432,
      url: 'postgres://10.0.0.5:5432/app',
      nested: [{ env: 'prod', n: 3 }],
      cfg: { heap: '2g' },
      inline: 'cfg={"heap":"2g"}',
      nothing: null,
      jinja: '{{ inventory_hostname }}',
    });
  });

  it('names the reference and the missing field', () => {
    expect(() => resolveReferences({ x: '{{ tasks.master.output.missing.deep }}' }, lookup)).toThrow(ResolutionError);
    expect(() => resolveReferences({ x: '{{ tasks.master.output.missing.deep }}' }, lookup)).toThrow(
      'cannot resolve {{ tasks.master.output.missing.deep }}: no field missing.deep',
    );
    expect(() => resolveReferences(['{{ data.absent }}'], lookup)).toThrow('data key absent is not written');
  });

  it('finds templates the way a reader would: braces and line breaks end one', () => {
    const exprs = (s: string) => collectReferences(s).refs.map((r) => r.text);
    expect(exprs('{{data.k1}} and {{  data.k2  }}')).toEqual(['{{ data.k1 }}', '{{ data.k2 }}']);
    expect(exprs('{{ data.k1\n}} {{ {{ data.k2 }} {{}} }}')).toEqual(['{{ data.k2 }}']);
    expect(exprs('{{{ data.k3 }}}')).toEqual(['{{ data.k3 }}']);
    expect(resolveReferences('[{{ data.cluster.node1.config }}] {{ x }} {{ data.cluster.node1.config }}', lookup)).toBe(
      '[{"heap":"2g"}] {{ x }} {"heap":"2g"}',
    );
    expect(resolveReferences('{{ data.cluster.node1.config }}{{ workflow.input.env }}', lookup)).toBe(
      '{"heap":"2g"}prod',
    );
  });

  // The old pattern took 6.5 s on "{{" and 3,000 spaces; a scanner takes time in proportion to the input.
  it('reads a megabyte of adversarial input in linear time', () => {
    const mb = 1024 * 1024;
    const inputs = {
      spaces: `{{${' '.repeat(mb)}`,
      openings: '{{'.repeat(mb / 2),
      unclosed: `{{ data.${'a.'.repeat(mb / 2)}`,
      nearlyClosed: `{{ ${'x }'.repeat(mb / 3)}`,
      longKey: `{{ data.${'a'.repeat(mb)} }}`,
      longPath: `{{ tasks.t.output${'[0]'.repeat(mb / 3)} }}`,
      quotes: `{{ workflow.input[${"'".repeat(mb)} }}`,
      manyRefs: '{{ data.k1 }}'.repeat(mb / 13),
    };
    for (const [name, text] of Object.entries(inputs)) {
      const started = performance.now();
      collectReferences({ text });
      try {
        resolveReferences({ text }, () => ({ found: true, value: 1 }));
      } catch {
        // a malformed reference may throw; only the time matters here
      }
      const ms = performance.now() - started;
      expect({ name, fast: ms < 1500 }).toEqual({ name, fast: true });
    }
  });
});
