import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cancelTask, rerun } from './control.js';
import { noop, onError } from './testing/factories.js';
import { EngineHarness } from './testing/engine-harness.js';

/** A failed attempt: retried by policy, then on_error handlers, then the workflow's on_failure. */
describe('failure', () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await EngineHarness.open();
  });
  afterAll(async () => {
    await h?.close();
  });

  /** The task-ready effects of the task since `mark`: attempt and delay of each offer. */
  const offers = async (wf: string, name: string, mark: number) => {
    const { id } = await h.task(wf, name);
    return h
      .effectsSince(mark)
      .flatMap((e) => (e.kind === 'task-ready' && e.taskId === id ? [{ attempt: e.attempt, delayMs: e.delayMs }] : []));
  };

  describe('retry', () => {
    it('makes a failed attempt READY again as the next attempt, after its delay, until the count is spent', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('t', { retry: { count: 2, delay_s: 10, backoff: 2 } })] });
      let mark = h.mark();
      await h.fail(wf, 't', { message: 'flaky', code: 'E' });
      let t = await h.task(wf, 't');
      expect(t).toMatchObject({ state: 'READY', attempt: 2, error: { code: 'E', message: 'flaky' } });
      expect(t.ready_at! - t.updated_at).toBe(10_000);
      expect(await offers(wf, 't', mark)).toEqual([{ attempt: 2, delayMs: 10_000 }]);

      mark = h.mark();
      await h.fail(wf, 't', { code: 'E' });
      t = await h.task(wf, 't');
      expect(t).toMatchObject({ state: 'READY', attempt: 3 });
      expect(t.ready_at! - t.updated_at).toBe(20_000);
      expect(await offers(wf, 't', mark)).toEqual([{ attempt: 3, delayMs: 20_000 }]);

      mark = h.mark();
      await h.fail(wf, 't', { code: 'E' });
      expect(await h.task(wf, 't')).toMatchObject({ state: 'ERROR', attempt: 3, handled: false });
      expect(await offers(wf, 't', mark)).toEqual([]);
      expect((await h.workflow(wf)).state).toBe('ERROR');
    });

    it('caps the delay at max_delay_s', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('t', { retry: { count: 3, delay_s: 10, backoff: 10, max_delay_s: 30 } })],
      });
      await h.fail(wf, 't');
      const mark = h.mark();
      await h.fail(wf, 't');
      expect(await offers(wf, 't', mark)).toEqual([{ attempt: 3, delayMs: 30_000 }]);
    });

    it('fails for good at once when the error says it is not retryable', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('t', { retry: { count: 5 } })] });
      await h.fail(wf, 't', {}, { retryable: false });
      expect(await h.task(wf, 't')).toMatchObject({ state: 'ERROR', attempt: 1 });
    });

    it('runs a handed-back attempt again at once, outside the retry budget, at most 3 times', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('t')] });
      for (let attempt = 2; attempt <= 4; attempt++) {
        const mark = h.mark();
        await h.fail(wf, 't', { code: 'LEASE_NOT_DELIVERED' }, { handBack: true });
        expect(await h.task(wf, 't')).toMatchObject({ state: 'READY', attempt, handbacks: attempt - 1 });
        expect(await offers(wf, 't', mark)).toEqual([{ attempt, delayMs: 0 }]);
      }
      await h.fail(wf, 't', { code: 'LEASE_NOT_DELIVERED' }, { handBack: true });
      expect((await h.task(wf, 't')).state).toBe('ERROR');
    });
  });

  describe('on_error', () => {
    it('runs the handlers of the first entry whose codes contain the error code', async () => {
      const wf = await h.createWorkflow({
        tasks: [
          noop('t', { on_error: [onError(['h1'], ['E1']), onError(['h2'], ['E2', 'E3']), onError(['h3'])] }),
          noop('dep', { requires: ['t'] }),
        ],
      });
      await h.fail(wf, 't', { code: 'E2' });
      const tasks = await h.tasks(wf);
      expect(tasks.has('h1') || tasks.has('h3')).toBe(false);
      expect(tasks.get('h2')).toMatchObject({ state: 'READY', kind: 'handler', parent_task_id: tasks.get('t')!.id });
      expect(tasks.get('t')).toMatchObject({ state: 'ERROR', handling: true, handled: false });
      // Its dependents wait for the handlers' verdict.
      expect(tasks.get('dep')!.state).toBe('WAITING');
      expect((await h.workflow(wf)).state).toBe('RUNNING');
    });

    it('matches the exit code as a string, also when the error has a code of its own', async () => {
      const wf = await h.createWorkflow({
        tasks: [
          noop('own', { on_error: [onError(['h-own'], ['3'])] }),
          noop('bare', { on_error: [onError(['h-bare'], ['3'])] }),
        ],
      });
      await h.fail(wf, 'own', { code: 'OOPS' }, { exit_code: 3 });
      await h.fail(wf, 'bare', {}, { exit_code: 3 });
      expect((await h.task(wf, 'bare')).error?.code).toBe('3');
      expect(await h.named(wf, 'READY')).toEqual(['h-bare', 'h-own']);
    });

    it('runs an entry without codes for any error the entries before it do not name', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('t', { on_error: [onError(['hx'], ['X']), onError(['any'])] })],
      });
      await h.fail(wf, 't', { code: 'Y' });
      expect(await h.named(wf, 'READY')).toEqual(['any']);
    });

    it('starts handlers only once the retries are spent', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('t', { retry: { count: 1 }, on_error: [onError(['h'])] })] });
      await h.fail(wf, 't');
      expect((await h.tasks(wf)).has('h')).toBe(false);
      await h.fail(wf, 't');
      expect(await h.named(wf, 'READY')).toEqual(['h']);
    });

    it('leaves the failure unhandled when no entry matches: on_failure applies', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('t', { on_error: [onError(['h'], ['OTHER'])] }), noop('x')] });
      await h.fail(wf, 't', { code: 'E' });
      expect((await h.tasks(wf)).has('h')).toBe(false);
      expect((await h.workflow(wf)).state).toBe('ERROR');
    });

    it('gives the handlers the failure in their input: error and failed_task', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('t', { on_error: [{ run: [noop('h', { input: { mine: 1 } })] }] })],
      });
      await h.fail(wf, 't', { message: 'no space', code: 'ENOSPC' }, { exit_code: 28 });
      const t = await h.task(wf, 't');
      expect((await h.task(wf, 'h')).input).toEqual({
        mine: 1,
        error: { message: 'no space', code: 'ENOSPC' },
        failed_task: { id: t.id, name: 't', attempt: 1, exit_code: 28 },
      });
    });

    it('handles the failure when every handler succeeds: the task stays ERROR, handled, and its dependents go on', async () => {
      const wf = await h.createWorkflow({
        tasks: [
          noop('t', { tags: ['tt'], on_error: [onError(['h1', 'h2'])] }),
          noop('dep', { requires: ['t'] }),
          noop('by-tag', { requires_tags: ['tt'] }),
        ],
      });
      await h.fail(wf, 't');
      await h.complete(wf, ['h1']);
      expect((await h.task(wf, 't')).handling).toBe(true);
      expect(await h.named(wf, 'WAITING')).toEqual(['by-tag', 'dep']);

      const mark = h.mark();
      await h.complete(wf, ['h2']);
      expect(await h.task(wf, 't')).toMatchObject({ state: 'ERROR', handled: true, handling: false });
      expect(await h.offered(wf, mark)).toEqual(['by-tag', 'dep']);
      await h.complete(wf, ['by-tag', 'dep']);
      expect((await h.workflow(wf)).state).toBe('SUCCESS');
    });

    it('leaves the failure unhandled when a handler fails: on_failure applies', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'continue',
        tasks: [noop('t', { on_error: [onError(['h'])] }), noop('dep', { requires: ['t'] }), noop('other')],
      });
      await h.fail(wf, 't');
      await h.fail(wf, 'h', {}, { retryable: false });
      expect(await h.task(wf, 't')).toMatchObject({ state: 'ERROR', handled: false, handling: false });
      expect((await h.task(wf, 'dep')).state).toBe('SKIPPED');
      await h.complete(wf, ['other']);
      expect((await h.workflow(wf)).state).toBe('ERROR');
    });

    it('ends a workflow with on_failure fail when a handler fails', async () => {
      const wf = await h.createWorkflow({ tasks: [noop('t', { on_error: [onError(['h'])] }), noop('other')] });
      await h.fail(wf, 't');
      expect((await h.workflow(wf)).state).toBe('RUNNING');
      await h.fail(wf, 'h', {}, { retryable: false });
      expect((await h.workflow(wf)).state).toBe('ERROR');
      expect((await h.task(wf, 'other')).state).toBe('SKIPPED');
    });

    it('runs the handlers again, under suffixed names, when a rerun task fails again', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'continue',
        tasks: [noop('t', { on_error: [onError(['h'])] }), noop('other')],
      });
      await h.fail(wf, 't');
      await h.fail(wf, 'h', {}, { retryable: false });
      await h.onTask(wf, 't', rerun);
      await h.fail(wf, 't');
      expect(await h.task(wf, 'h.2')).toMatchObject({ state: 'READY', kind: 'handler' });
    });
  });

  it('ends a running task asked to cancel CANCELLED when its attempt fails, without a retry', async () => {
    const wf = await h.createWorkflow({
      tasks: [noop('t', { retry: { count: 3 }, on_error: [onError(['h'])] }), noop('dep', { requires: ['t'] })],
    });
    await h.lease(wf, ['t']);
    await h.onTask(wf, 't', cancelTask);
    await h.fail(wf, 't', { message: 'killed' });

    const t = await h.task(wf, 't');
    expect(t).toMatchObject({ state: 'CANCELLED', attempt: 1 });
    expect(t.error).toEqual({ code: 'CANCELLED', message: expect.stringContaining('killed') });
    expect((await h.tasks(wf)).has('h')).toBe(false);
    expect((await h.task(wf, 'dep')).error?.code).toBe('DEPENDENCY_CANCELLED');
    // A cancel is not a failure.
    expect((await h.workflow(wf)).state).toBe('SUCCESS');
  });
});
