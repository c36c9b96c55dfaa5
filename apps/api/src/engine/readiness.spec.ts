import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { seal } from './control.js';
import { noop } from './testing/factories.js';
import { EngineHarness } from './testing/engine-harness.js';

/** When a WAITING task becomes READY (and is offered to workers), SKIPPED or ERROR DEADLOCK. */
describe('readiness', () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await EngineHarness.open();
  });
  afterAll(async () => {
    await h?.close();
  });

  describe('requires', () => {
    it('waits for every task it names, and is offered once they all succeeded', async () => {
      const mark = h.mark();
      const wf = await h.createWorkflow({
        tasks: [noop('a'), noop('b', { requires: ['a'] }), noop('c', { requires: ['a', 'b'] })],
      });
      expect(await h.named(wf, 'READY')).toEqual(['a']);
      expect(await h.named(wf, 'WAITING')).toEqual(['b', 'c']);
      expect(await h.offered(wf, mark)).toEqual(['a']);

      const afterA = h.mark();
      await h.complete(wf, ['a']);
      expect(await h.named(wf, 'READY')).toEqual(['b']);
      expect(await h.offered(wf, afterA)).toEqual(['b']);

      await h.complete(wf, ['b']);
      expect(await h.named(wf, 'READY')).toEqual(['c']);
    });

    it('takes {{ tasks.NAME.output... }} in the input as a requirement of NAME', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('a'), noop('b', { input: { v: '{{ tasks.a.output.v }}', text: 'got {{ tasks.a.output.v }}' } })],
      });
      expect((await h.task(wf, 'b')).requires).toEqual(['a']);
      expect(await h.named(wf, 'WAITING')).toEqual(['b']);
      await h.complete(wf, ['a'], { outputs: { a: { v: 1 } } });
      expect(await h.named(wf, 'READY')).toEqual(['b']);
    });

    it('skips the dependents of a task that failed unhandled (on_failure continue); the rest runs', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'continue',
        tasks: [
          noop('a'),
          noop('b', { requires: ['a'], tags: ['after-a'] }),
          noop('c', { requires_tags: ['after-a'] }),
          noop('d'),
        ],
      });
      await h.fail(wf, 'a', { message: 'boom', code: 'E' }, { retryable: false });

      const tasks = await h.tasks(wf);
      expect(tasks.get('b')!.state).toBe('SKIPPED');
      expect(tasks.get('b')!.error).toEqual({ code: 'DEPENDENCY_FAILED', message: expect.stringContaining('a') });
      expect(tasks.get('c')!.state).toBe('SKIPPED');
      expect(tasks.get('d')!.state).toBe('READY');
      expect((await h.workflow(wf)).state).toBe('RUNNING');
    });
  });

  describe('requires_tags', () => {
    it('waits for every member of the tag, members added while it waits included', async () => {
      const wf = await h.createWorkflow({
        sealed: false,
        tasks: [noop('m1', { tags: ['x'] }), noop('m2', { tags: ['x', 'y'] }), noop('w', { requires_tags: ['x'] })],
      });
      await h.complete(wf, ['m1']);
      expect((await h.task(wf, 'w')).state).toBe('WAITING');

      await h.addTasks(wf, [noop('m3', { tags: ['x'], requires: ['m2'] })]);
      await h.complete(wf, ['m2']);
      expect((await h.task(wf, 'w')).state).toBe('WAITING');

      const mark = h.mark();
      await h.complete(wf, ['m3']);
      expect((await h.task(wf, 'w')).state).toBe('READY');
      expect(await h.offered(wf, mark)).toEqual(['w']);
    });

    it('never waits on itself when it carries the tag it selects', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('m', { tags: ['x'] }), noop('s', { tags: ['x'], requires_tags: ['x'] })],
      });
      expect(await h.named(wf, 'WAITING')).toEqual(['s']);
      await h.complete(wf, ['m']);
      expect(await h.named(wf, 'READY')).toEqual(['s']);
    });

    it('is skipped as soon as one member fails, without waiting for the others', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'continue',
        tasks: [noop('m1', { tags: ['x'] }), noop('m2', { tags: ['x'] }), noop('w', { requires_tags: ['x'] })],
      });
      await h.fail(wf, 'm1', {}, { retryable: false });
      expect((await h.task(wf, 'w')).state).toBe('SKIPPED');
      expect((await h.task(wf, 'm2')).state).toBe('READY');
    });

    it('is met by a selector that matches nothing only once the workflow is sealed', async () => {
      const wf = await h.createWorkflow({
        sealed: false,
        tasks: [noop('a'), noop('w', { requires_tags: ['nobody'] })],
      });
      await h.complete(wf, ['a']);
      expect((await h.task(wf, 'w')).state).toBe('WAITING');
      expect((await h.workflow(wf)).state).toBe('RUNNING');

      const mark = h.mark();
      await h.inWorkflow(wf, seal);
      expect((await h.task(wf, 'w')).state).toBe('READY');
      expect(await h.offered(wf, mark)).toEqual(['w']);
    });

    it('is met at once by a selector that matches nothing in a workflow sealed from the start', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('w', { requires_tags: ['nobody'] })] });
      expect((await h.task(wf, 'w')).state).toBe('READY');
    });
  });

  describe('data references', () => {
    it('hold {{ data.KEY }} until the key is written', async () => {
      const wf = await h.createWorkflow({ sealed: false, tasks: [noop('r', { input: { v: '{{ data.k }}' } })] });
      expect((await h.task(wf, 'r')).state).toBe('WAITING');
      await h.writeData(wf, 'other', 1);
      expect((await h.task(wf, 'r')).state).toBe('WAITING');

      const mark = h.mark();
      await h.writeData(wf, 'k', 'v');
      expect((await h.task(wf, 'r')).state).toBe('READY');
      expect(await h.offered(wf, mark)).toEqual(['r']);
    });

    it('release the reader when a task produces the key in its output', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('p', { produces: ['k'] }), noop('r', { input: { v: '{{ data.k }}' } })],
      });
      expect((await h.task(wf, 'r')).state).toBe('WAITING');
      await h.complete(wf, ['p'], { outputs: { p: { k: 42 } } });
      expect((await h.task(wf, 'r')).state).toBe('READY');
    });

    it('fail the reader with DEADLOCK in a sealed workflow where no task produces the key', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'continue',
        tasks: [noop('a'), noop('r', { input: { v: '{{ data.k }}' } })],
      });
      const r = await h.task(wf, 'r');
      expect(r.state).toBe('ERROR');
      expect(r.error).toEqual({ code: 'DEADLOCK', message: expect.stringContaining('data key k') });
      expect((await h.task(wf, 'a')).state).toBe('READY');
    });

    it('fail the reader with DEADLOCK when the only producer ends without the key', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'continue',
        tasks: [noop('p', { produces: ['k'] }), noop('r', { input: { v: '{{ data.k }}' } })],
      });
      await h.complete(wf, ['p'], { outputs: { p: { other: 1 } } });
      expect((await h.task(wf, 'r')).error?.code).toBe('DEADLOCK');
      expect((await h.workflow(wf)).state).toBe('ERROR');
    });

    it('wait in an open workflow (a producer may still come), and deadlock when it is sealed', async () => {
      const wf = await h.createWorkflow({
        sealed: false,
        on_failure: 'continue',
        tasks: [noop('r', { input: { v: '{{ data.k }}' } })],
      });
      expect((await h.task(wf, 'r')).state).toBe('WAITING');
      await h.inWorkflow(wf, seal);
      expect((await h.task(wf, 'r')).error?.code).toBe('DEADLOCK');
      expect((await h.workflow(wf)).state).toBe('ERROR');
    });
  });

  describe('not_before', () => {
    const inOneMinute = () => new Date(h.db.now() + 60_000).toISOString();

    it('holds a task whose dependencies are met until its time, then offers it', async () => {
      const mark = h.mark();
      const wf = await h.createWorkflow({ tasks: [noop('a'), noop('later', { not_before: inOneMinute() })] });
      await h.complete(wf, ['a']);
      await h.wakeDue();
      // Held for time, not stuck: the sealed workflow neither deadlocks nor finishes.
      expect((await h.task(wf, 'later')).state).toBe('WAITING');
      expect((await h.workflow(wf)).state).toBe('RUNNING');
      expect(await h.offered(wf, mark)).toEqual(['a']);

      h.advance(61_000);
      await h.wakeDue();
      expect((await h.task(wf, 'later')).state).toBe('READY');
      expect(await h.offered(wf, mark)).toEqual(['a', 'later']);
    });

    it('holds a task released by its dependency until its time', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('a'), noop('b', { requires: ['a'], not_before: inOneMinute() })],
      });
      await h.complete(wf, ['a']);
      expect((await h.task(wf, 'b')).state).toBe('WAITING');
      h.advance(61_000);
      await h.wakeDue();
      expect((await h.task(wf, 'b')).state).toBe('READY');
    });

    it('does not hold a task whose time has passed', async () => {
      const past = new Date(h.db.now() - 1000).toISOString();
      const wf = await h.createWorkflow({ tasks: [noop('t', { not_before: past })] });
      expect((await h.task(wf, 't')).state).toBe('READY');
    });
  });

  it('does not let priority change readiness; the offer carries it', async () => {
    const mark = h.mark();
    const wf = await h.createWorkflow({
      tasks: [noop('a'), noop('hi', { priority: 100, requires: ['a'] }), noop('lo', { priority: -100 })],
    });
    expect(await h.named(wf, 'READY')).toEqual(['a', 'lo']);
    expect(await h.named(wf, 'WAITING')).toEqual(['hi']);
    await h.complete(wf, ['a']);
    const ids = new Map([...(await h.tasks(wf)).values()].map((t) => [t.id, t.name]));
    const priorities = h
      .effectsSince(mark)
      .flatMap((e) => (e.kind === 'task-ready' && ids.has(e.taskId) ? [[ids.get(e.taskId), e.priority]] : []));
    expect(priorities).toEqual([
      ['a', 0],
      ['lo', -100],
      ['hi', 100],
    ]);
  });
});
