import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { HttpException } from '@nestjs/common';
import { cancelTask, cancelWorkflow, deleteTask, pause, rerun, resume, seal } from './control.js';
import { noop, onError } from './testing/factories.js';
import { EngineHarness } from './testing/engine-harness.js';

/** The status and body a refused request would be answered with (null when it was not refused). */
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: unknown) => {
      if (!(e instanceof HttpException)) throw e;
      return { status: e.getStatus(), body: e.getResponse() };
    },
  );

/** What people ask of a workflow or a task: pause, resume, cancel, rerun, seal, delete. */
describe('control', () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await EngineHarness.open();
  });
  afterAll(async () => {
    await h?.close();
  });

  describe('pause and resume', () => {
    it('offers nothing while paused, and offers every READY task again on resume', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('a'), noop('b', { requires: ['a'] }), noop('c')] });
      await h.lease(wf, ['a']);
      await h.inWorkflow(wf, pause);
      expect((await h.workflow(wf)).state).toBe('PAUSED');

      const mark = h.mark();
      await h.complete(wf, ['a']);
      expect(await h.named(wf, 'READY')).toEqual(['b', 'c']);
      expect(await h.offered(wf, mark)).toEqual([]);
      // Jobs queued before the pause find nothing to lease.
      await expect(h.lease(wf, ['c'])).rejects.toThrow('leased 0 of 1');

      await h.inWorkflow(wf, resume);
      expect((await h.workflow(wf)).state).toBe('RUNNING');
      expect(await h.offered(wf, mark)).toEqual(['b', 'c']);
      await h.complete(wf, ['b', 'c']);
      expect((await h.workflow(wf)).state).toBe('SUCCESS');
    });

    it('offers a retry that was due during the pause with what is left of its delay', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('t', { retry: { count: 1, delay_s: 30 } })] });
      await h.lease(wf, ['t']);
      await h.inWorkflow(wf, pause);
      const mark = h.mark();
      await h.fail(wf, 't');
      expect(await h.offered(wf, mark)).toEqual([]);

      h.advance(10_000);
      await h.inWorkflow(wf, resume);
      const { id } = await h.task(wf, 't');
      const offer = h.effectsSince(mark).find((e) => e.kind === 'task-ready' && e.taskId === id);
      expect(offer).toMatchObject({ attempt: 2 });
      expect(offer?.kind === 'task-ready' && offer.delayMs).toBeGreaterThan(19_000);
      expect(offer?.kind === 'task-ready' && offer.delayMs).toBeLessThanOrEqual(20_000);
    });

    it('refuses (409) to pause or resume a finished workflow; pausing twice changes nothing', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('a')] });
      await h.inWorkflow(wf, pause);
      await h.inWorkflow(wf, pause);
      expect((await h.workflow(wf)).state).toBe('PAUSED');
      await h.inWorkflow(wf, cancelWorkflow);
      expect(await refusal(h.inWorkflow(wf, pause))).toMatchObject({ status: 409 });
      expect(await refusal(h.inWorkflow(wf, resume))).toMatchObject({ status: 409 });
    });
  });

  describe('cancel a workflow', () => {
    it('ends it CANCELLED: open tasks CANCELLED, running ones asked to cancel, announced once', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('running', { retry: { count: 2 } }), noop('ready'), noop('waiting', { requires: ['ready'] })],
      });
      await h.lease(wf, ['running']);
      const mark = h.mark();
      await h.inWorkflow(wf, cancelWorkflow);
      await h.inWorkflow(wf, cancelWorkflow);

      expect((await h.workflow(wf)).state).toBe('CANCELLED');
      expect(h.finishedSince(wf, mark)).toEqual(['CANCELLED']);
      const tasks = await h.tasks(wf);
      for (const name of ['ready', 'waiting'])
        expect(tasks.get(name)).toMatchObject({ state: 'CANCELLED', error: { code: 'WORKFLOW_CANCELLED' } });
      expect(tasks.get('running')).toMatchObject({ state: 'RUNNING', cancel_requested: true });

      // Its worker gives up: the attempt ends CANCELLED, not retried.
      await h.fail(wf, 'running');
      expect((await h.task(wf, 'running')).state).toBe('CANCELLED');
      expect(await h.offered(wf, mark)).toEqual([]);
    });

    it('refuses (409) to cancel a workflow that finished otherwise', async () => {
      const wf = await h.createWorkflow({ tasks: [] });
      expect(await refusal(h.inWorkflow(wf, cancelWorkflow))).toMatchObject({
        status: 409,
        body: { details: { state: 'SUCCESS' } },
      });
    });
  });

  describe('cancel a task', () => {
    it('cancels a WAITING or READY task at once; what requires it is SKIPPED', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('ready'), noop('waiting', { requires: ['ready'] }), noop('after', { requires: ['waiting'] })],
      });
      await h.onTask(wf, 'waiting', cancelTask);
      expect(await h.task(wf, 'waiting')).toMatchObject({ state: 'CANCELLED', error: { code: 'CANCELLED' } });
      expect(await h.task(wf, 'after')).toMatchObject({ state: 'SKIPPED', error: { code: 'DEPENDENCY_CANCELLED' } });

      await h.onTask(wf, 'ready', cancelTask);
      expect((await h.task(wf, 'ready')).state).toBe('CANCELLED');
      await expect(h.lease(wf, ['ready'])).rejects.toThrow('not READY');
    });

    it('asks a running task to cancel (its worker learns it at the next heartbeat)', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('t')] });
      await h.lease(wf, ['t']);
      await h.onTask(wf, 't', cancelTask);
      expect(await h.task(wf, 't')).toMatchObject({ state: 'RUNNING', cancel_requested: true });
      // A worker that finishes anyway reports success.
      await h.complete(wf, ['t']);
      expect((await h.task(wf, 't')).state).toBe('SUCCESS');
    });

    it('refuses (409) to cancel a finished task, naming its state', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('t'), noop('u')] });
      await h.complete(wf, ['t']);
      expect(await refusal(h.onTask(wf, 't', cancelTask))).toMatchObject({
        status: 409,
        body: { details: { state: 'SUCCESS' } },
      });
    });
  });

  describe('rerun', () => {
    it('runs an ERROR task again as the next attempt; the tasks skipped for it wait again and run', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'continue',
        tasks: [noop('a'), noop('b', { requires: ['a'] }), noop('c', { requires: ['b'] }), noop('other')],
      });
      await h.fail(wf, 'a', { code: 'E' }, { exit_code: 1 });
      expect(await h.named(wf, 'SKIPPED')).toEqual(['b', 'c']);

      const mark = h.mark();
      await h.onTask(wf, 'a', rerun);
      expect(await h.task(wf, 'a')).toMatchObject({ state: 'READY', attempt: 2, error: null, exit_code: null });
      expect(await h.named(wf, 'WAITING')).toEqual(['b', 'c']);
      expect(h.effectsSince(mark)).toContainEqual(expect.objectContaining({ kind: 'task-ready', attempt: 2 }));

      await h.complete(wf, ['a', 'other']);
      await h.complete(wf, ['b']);
      await h.complete(wf, ['c']);
      expect((await h.workflow(wf)).state).toBe('SUCCESS');
    });

    it('refuses (409) a task that is not ERROR, one of a finished workflow, and one whose handlers run', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'continue',
        tasks: [noop('ok'), noop('handled', { on_error: [onError(['h'])] })],
      });
      expect(await refusal(h.onTask(wf, 'ok', rerun))).toMatchObject({
        status: 409,
        body: { details: { state: 'READY' } },
      });
      await h.fail(wf, 'handled');
      expect(await refusal(h.onTask(wf, 'handled', rerun))).toMatchObject({ status: 409 });

      const ended = await h.createWorkflow({ tasks: [noop('f')] });
      await h.fail(ended, 'f', {}, { retryable: false });
      expect(await refusal(h.onTask(ended, 'f', rerun))).toMatchObject({
        status: 409,
        body: { details: { state: 'ERROR' } },
      });
    });
  });

  describe('seal', () => {
    it('closes the workflow to new tasks (409) and is idempotent', async () => {
      const wf = await h.createWorkflow({ sealed: false, tasks: [noop('a')] });
      await h.addTasks(wf, [noop('b')]);
      await h.inWorkflow(wf, seal);
      await h.inWorkflow(wf, seal);
      expect((await h.workflow(wf)).sealed).toBe(true);
      expect(await refusal(h.addTasks(wf, [noop('c')]))).toMatchObject({ status: 409 });
      await h.complete(wf, ['a', 'b']);
      expect((await h.workflow(wf)).state).toBe('SUCCESS');
    });

    it('refuses (409) to seal a workflow that ended open', async () => {
      const wf = await h.createWorkflow({ sealed: false, tasks: [noop('a')] });
      await h.inWorkflow(wf, cancelWorkflow);
      expect(await refusal(h.inWorkflow(wf, seal))).toMatchObject({ status: 409 });
    });
  });

  describe('delete a task', () => {
    it('deletes a WAITING or READY task; tasks selecting its tag no longer wait for it', async () => {
      const wf = await h.createWorkflow({
        tasks: [
          noop('z'),
          noop('m1', { tags: ['x'] }),
          noop('m2', { tags: ['x'], requires: ['z'] }),
          noop('w', { requires_tags: ['x'] }),
        ],
      });
      await h.complete(wf, ['m1']);
      const mark = h.mark();
      await h.onTask(wf, 'm2', deleteTask);
      expect((await h.tasks(wf)).has('m2')).toBe(false);
      expect(await h.offered(wf, mark)).toEqual(['w']);

      await h.onTask(wf, 'w', deleteTask);
      await h.complete(wf, ['z']);
      expect((await h.workflow(wf)).state).toBe('SUCCESS');
    });

    it('refuses (409) a task another requires by name, naming it, and a task that ran', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('a'), noop('b', { requires: ['a'] }), noop('c')] });
      expect(await refusal(h.onTask(wf, 'a', deleteTask))).toMatchObject({
        status: 409,
        body: { details: { required_by: ['b'] } },
      });
      await h.lease(wf, ['c']);
      expect(await refusal(h.onTask(wf, 'c', deleteTask))).toMatchObject({
        status: 409,
        body: { details: { state: 'RUNNING' } },
      });
      expect([...(await h.tasks(wf)).keys()].sort()).toEqual(['a', 'b', 'c']);
    });
  });

  it('a workflow that got stuck while PAUSED (a cycle through a rerun, sealed while paused) is found deadlocked once resumed', async () => {
    const wf = await h.createWorkflow({
      sealed: false,
      on_failure: 'continue',
      tasks: [noop('a'), noop('b', { requires: ['a'], requires_tags: ['tn'] }), noop('other')],
    });
    await h.fail(wf, 'a', {}, { retryable: false });
    // The cycle as a database an earlier version wrote may hold it (the submission check refuses it now).
    await h.addTasks(wf, [noop('n', { tags: ['tn'], requires: ['a'] })]);
    await h.rewriteRequires(wf, 'n', ['b']);
    await h.onTask(wf, 'a', rerun);
    await h.complete(wf, ['a', 'other']);
    await h.inWorkflow(wf, pause);
    await h.inWorkflow(wf, seal);
    await h.inWorkflow(wf, resume);
    expect(await h.named(wf, 'ERROR')).toEqual(['b', 'n']);
    expect((await h.workflow(wf)).state).toBe('ERROR');
  });
});
