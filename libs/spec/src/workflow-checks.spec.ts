import { describe, expect, it } from '@jest/globals';
import { checkWorkflowTasks } from './workflow-checks.js';

const sh = { action: { type: 'shell', command: 'true' } };

describe("the checks of a new workflow's tasks together", () => {
  it('passes a workflow whose dependencies all name its tasks', () => {
    expect(
      checkWorkflowTasks([
        { name: 'a', tags: ['web'], produces: ['k'], ...sh },
        { name: 'b', requires: ['a'], input: { x: '{{ tasks.a.output.ip }}', y: '{{ data.k }}' }, ...sh },
        { name: 'c', requires_tags: ['web'], ...sh },
      ]),
    ).toEqual([]);
  });

  it('names the field of each problem: duplicates, unknown and self requires, references, reserved keys', () => {
    expect(
      checkWorkflowTasks([
        { name: 'a', requires: ['nope', 'a'], produces: ['tasks.a.output'], ...sh },
        { name: 'a', input: { x: '{{ tasks.ghost.output }}', y: '{{ data.bad key }}' }, ...sh },
      ]),
    ).toEqual([
      { field: 'tasks.1.name', errors: ['"a" is also the name of tasks.0'] },
      { field: 'tasks.0.requires.0', errors: ['no task of this workflow is named nope'] },
      { field: 'tasks.0.requires.1', errors: ['a requires itself'] },
      {
        field: 'tasks.0.produces.0',
        errors: ['keys under "tasks." are task outputs: tasks.a.output cannot be produced'],
      },
      { field: 'tasks.1.input', errors: [expect.stringContaining('malformed reference: {{ data.bad key }}')] },
      { field: 'tasks.1.input', errors: ['{{ tasks.ghost.output }}: no task of this workflow is named ghost'] },
    ]);
  });

  it('finds a cycle through names, tags and data keys, told from a task', () => {
    expect(
      checkWorkflowTasks([
        { name: 'lb', requires_tags: ['web'], produces: ['cfg'], ...sh },
        { name: 'web1', tags: ['web'], input: { c: '{{ data.cfg }}' }, ...sh },
      ]),
    ).toEqual([
      { field: 'tasks.0.requires_tags', errors: ['dependency cycle: lb -> tag:web -> web1 -> data:cfg -> lb'] },
    ]);
    expect(
      checkWorkflowTasks([
        { name: 'x', requires: ['y'], ...sh },
        { name: 'y', requires: ['x'], ...sh },
      ])[0],
    ).toEqual({ field: 'tasks.0.requires', errors: ['dependency cycle: x -> y -> x'] });
  });

  it('skips fields of the wrong type (the field checks report those)', () => {
    expect(checkWorkflowTasks([{ name: 3, requires: 'a', tags: null, input: 'x' }, null, 'nope'])).toEqual([]);
  });
});
