import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { markCompleted } from './reports.js';
import { noop } from './testing/factories.js';
import { EngineHarness } from './testing/engine-harness.js';

/**
 * The settle loop: in one operation, the facts a change records are applied in order
 * until none is left, and only then are the workflow-wide questions (done? stuck?) asked.
 */
describe('settle', () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await EngineHarness.open();
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Names of the workflow's tasks in the order their task-finished effects came since `mark`. */
  const finishedOrder = async (wf: string, mark: number) => {
    const byId = new Map([...(await h.tasks(wf)).values()].map((t) => [t.id, t.name]));
    return h.effectsSince(mark).flatMap((e) => (e.kind === 'task-finished' ? [byId.get(e.taskId)] : []));
  };

  it('settles a cascade of skips over several levels in the operation that failed its root', async () => {
    const wf = await h.createWorkflow({
      on_failure: 'continue',
      tasks: [
        noop('root'),
        noop('l1', { requires: ['root'] }),
        noop('l2', { requires: ['l1'], tags: ['t2'] }),
        noop('l3', { requires_tags: ['t2'] }),
      ],
    });
    const mark = h.mark();
    await h.fail(wf, 'root', {}, { retryable: false });

    expect(await h.named(wf, 'SKIPPED')).toEqual(['l1', 'l2', 'l3']);
    expect(await finishedOrder(wf, mark)).toEqual(['root', 'l1', 'l2', 'l3']);
    expect((await h.workflow(wf)).state).toBe('ERROR');
    expect(h.finishedSince(wf, mark)).toEqual(['ERROR']);
  });

  it('asks whether a workflow is stuck only once every fact is applied', async () => {
    // Created sealed: had the question come half-way through the creation, the task that
    // can run would have been failed as deadlocked with the one that cannot.
    const wf = await h.createWorkflow({
      on_failure: 'continue',
      tasks: [noop('a'), noop('b', { requires: ['a'] }), noop('never', { input: { v: '{{ data.k }}' } })],
    });
    expect(await h.named(wf, 'ERROR')).toEqual(['never']);
    expect(await h.named(wf, 'READY')).toEqual(['a']);
    expect(await h.named(wf, 'WAITING')).toEqual(['b']);
    expect((await h.workflow(wf)).state).toBe('RUNNING');
  });

  it('ends a workflow failed twice in one operation once', async () => {
    const mark = h.mark();
    const wf = await h.createWorkflow({
      tasks: [noop('r1', { input: { v: '{{ data.k1 }}' } }), noop('r2', { input: { v: '{{ data.k2 }}' } })],
    });
    expect(await h.named(wf, 'ERROR')).toEqual(['r1', 'r2']);
    expect((await h.workflow(wf)).state).toBe('ERROR');
    expect(h.finishedSince(wf, mark)).toEqual(['ERROR']);
  });

  it('settles every workflow of a report batch, and finishes each once', async () => {
    const one = await h.createWorkflow({ tasks: [noop('a'), noop('b')] });
    const two = await h.createWorkflow({ tasks: [noop('c', { tags: ['x'] }), noop('d', { requires_tags: ['x'] })] });
    const leased = [...(await h.lease(one, ['a', 'b'])), ...(await h.lease(two, ['c']))];
    const mark = h.mark();
    // One batch of reports for both workflows, as the completions batcher writes it.
    await h.engine.inTasksWorkflows(
      leased.map((t) => t.id),
      (uow, workflows, tasks) =>
        markCompleted(
          uow,
          leased.map((t) => ({ wf: workflows.get(t.workflow_id)!, task: tasks.get(t.id)!, output: {}, report: {} })),
        ),
    );
    expect(h.finishedSince(one, mark)).toEqual(['SUCCESS']);
    expect(await h.offered(two, mark)).toEqual(['d']);

    await h.complete(two, ['d']);
    expect(h.finishedSince(one, mark)).toEqual(['SUCCESS']);
    expect(h.finishedSince(two, mark)).toEqual(['SUCCESS']);
  });

  it('does not offer a task made READY and ended in the same operation', async () => {
    const mark = h.mark();
    const wf = await h.createWorkflow({ tasks: [noop('a'), noop('never', { input: { v: '{{ data.k }}' } })] });
    expect(await h.task(wf, 'a')).toMatchObject({ state: 'SKIPPED', error: { code: 'WORKFLOW_FAILED' } });
    expect(await h.offered(wf, mark)).toEqual([]);
    expect(await finishedOrder(wf, mark)).toContain('a');
  });
});
