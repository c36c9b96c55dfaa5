import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { HttpException } from '@nestjs/common';
import { cancelWorkflow } from './control.js';
import { patchTask, type TaskPatch } from './submission.js';
import { noop, onError } from './testing/factories.js';
import { EngineHarness } from './testing/engine-harness.js';

/** The status and message a refused request would be answered with (null when it was not refused). */
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: unknown) => {
      if (!(e instanceof HttpException)) throw e;
      return { status: e.getStatus(), message: (e.getResponse() as { message: string }).message };
    },
  );

/** Adding tasks (all or none, every check first) and changing one before it runs. */
describe('submission', () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await EngineHarness.open();
  });
  afterAll(async () => {
    await h?.close();
  });

  const patch = (wf: string, name: string, change: TaskPatch) =>
    h.onTask(wf, name, (uow, w, t) => patchTask(uow, w, t, change));

  it('adds tasks to an open workflow and offers those that can run in the same operation', async () => {
    const wf = await h.createWorkflow({ sealed: false, tasks: [noop('a')] });
    const mark = h.mark();
    await h.addTasks(wf, [noop('b'), noop('c', { requires: ['a', 'b'] })]);
    expect(await h.named(wf, 'READY')).toEqual(['a', 'b']);
    expect(await h.named(wf, 'WAITING')).toEqual(['c']);
    expect(await h.offered(wf, mark)).toEqual(['b']);
  });

  it('adds all or none: one bad task in a batch adds nothing', async () => {
    const wf = await h.createWorkflow({ sealed: false, tasks: [noop('a')] });
    const mark = h.mark();
    expect(await refusal(h.addTasks(wf, [noop('b'), noop('c', { requires: ['missing'] })]))).toEqual({
      status: 422,
      message: 'task c requires unknown task missing',
    });
    expect([...(await h.tasks(wf)).keys()]).toEqual(['a']);
    expect(h.effectsSince(mark)).toEqual([]);
  });

  it('refuses (409) tasks for a sealed or a finished workflow', async () => {
    const sealed = await h.createWorkflow({ tasks: [noop('a')] });
    expect(await refusal(h.addTasks(sealed, [noop('b')]))).toMatchObject({ status: 409 });
    const ended = await h.createWorkflow({ sealed: false, tasks: [noop('a')] });
    await h.inWorkflow(ended, cancelWorkflow);
    expect(await refusal(h.addTasks(ended, [noop('b')]))).toMatchObject({ status: 409 });
  });

  it('refuses (409) new tasks while an open workflow rolls back', async () => {
    const wf = await h.createWorkflow({ sealed: false, on_failure: 'rollback', tasks: [noop('f'), noop('r')] });
    await h.lease(wf, ['r']);
    await h.fail(wf, 'f', {}, { retryable: false });
    expect(await refusal(h.addTasks(wf, [noop('late')]))).toMatchObject({ status: 409 });
  });

  it.each([
    ['a name used twice in the request', [noop('x'), noop('x')], 'duplicate task name x in the request'],
    ['a name the workflow has', [noop('a')], 'task name a is already used'],
    ['a task requiring itself', [noop('x', { requires: ['x'] })], 'dependency cycle: x -> x'],
    ['a handler named like a task', [noop('x'), noop('y', { on_error: [onError(['x'])] })], 'clashes with a task'],
    ['a key under tasks. in produces', [noop('x', { produces: ['tasks.a.output'] })], 'cannot produce tasks.a.output'],
    ['a malformed reference', [noop('x', { input: { v: '{{ data.bad key }}' } })], 'malformed reference'],
  ])('refuses (422) %s', async (_, specs, message) => {
    const wf = await h.createWorkflow({ sealed: false, tasks: [noop('a')] });
    const refused = await refusal(h.addTasks(wf, specs));
    expect(refused?.status).toBe(422);
    expect(refused?.message).toContain(message);
  });

  it('keeps a handler name for its task: a later task cannot take it (422)', async () => {
    const wf = await h.createWorkflow({ sealed: false, tasks: [noop('t', { on_error: [onError(['cleanup'])] })] });
    expect(await refusal(h.addTasks(wf, [noop('cleanup')]))).toMatchObject({
      status: 422,
      message: expect.stringContaining('reserved for an on_error handler'),
    });
  });

  it('refuses (422) a cycle closed through existing tasks, naming it from the new task', async () => {
    const wf = await h.createWorkflow({
      sealed: false,
      tasks: [noop('a', { requires_tags: ['b-side'] }), noop('r', { input: { v: '{{ data.k }}' } })],
    });
    expect(await refusal(h.addTasks(wf, [noop('b', { tags: ['b-side'], requires: ['a'] })]))).toEqual({
      status: 422,
      message: 'dependency cycle: b -> a -> tag:b-side -> b',
    });
    expect(await refusal(h.addTasks(wf, [noop('p', { produces: ['k'], requires: ['r'] })]))).toMatchObject({
      status: 422,
      message: 'dependency cycle: p -> r -> data:k -> p',
    });
  });

  describe('changing a task before it runs', () => {
    it('makes a READY task wait again for what it now requires', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('a'), noop('b')] });
      await patch(wf, 'b', { requires: ['a'] });
      expect(await h.task(wf, 'b')).toMatchObject({ state: 'WAITING', requires: ['a'] });
      await h.complete(wf, ['a']);
      expect((await h.task(wf, 'b')).state).toBe('READY');
    });

    it('releases the tasks selecting a tag it no longer carries', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('z'), noop('m', { tags: ['x'], requires: ['z'] }), noop('w', { requires_tags: ['x'] })],
      });
      const mark = h.mark();
      await patch(wf, 'm', { tags: ['other'] });
      expect(await h.offered(wf, mark)).toEqual(['w']);
      expect((await h.task(wf, 'm')).state).toBe('WAITING');
    });

    it('refuses (409) a task that runs, and (422) a change that closes a cycle', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('a'), noop('b', { requires: ['a'] })] });
      expect(await refusal(patch(wf, 'a', { requires: ['b'] }))).toMatchObject({
        status: 422,
        message: expect.stringContaining('dependency cycle'),
      });
      await h.lease(wf, ['a']);
      expect(await refusal(patch(wf, 'a', { priority: 5 }))).toMatchObject({ status: 409 });
    });
  });

  it("a PATCH that takes a key out of its only producer deadlocks the key's readers at once", async () => {
    const wf = await h.createWorkflow({
      tasks: [
        noop('z'),
        noop('p', { requires: ['z'], produces: ['k'] }),
        noop('r', { input: { v: '{{ data.k }}' } }),
        noop('o'),
      ],
    });
    await h.onTask(wf, 'p', (uow, w, t) => patchTask(uow, w, t, { produces: [] }));
    // As when p is deleted, or ends without writing k: r can never run.
    expect((await h.task(wf, 'r')).error?.code).toBe('DEADLOCK');
    expect((await h.workflow(wf)).state).toBe('ERROR');
  });
});
