import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rerun, seal } from './control.js';
import { noop } from './testing/factories.js';
import { EngineHarness } from './testing/engine-harness.js';

/** When a workflow ends, and how: SUCCESS, ERROR by each on_failure, or DEADLOCK of what can never run. */
describe('completion', () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await EngineHarness.open();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('ends a sealed workflow SUCCESS once every task succeeded, and announces it once', async () => {
    const mark = h.mark();
    const wf = await h.createWorkflow({ tasks: [noop('a'), noop('b', { requires: ['a'] })] });
    await h.complete(wf, ['a']);
    expect((await h.workflow(wf)).state).toBe('RUNNING');
    await h.complete(wf, ['b']);
    const row = await h.workflow(wf);
    expect(row.state).toBe('SUCCESS');
    expect(row.finished_at).not.toBeNull();
    expect(h.finishedSince(wf, mark)).toEqual(['SUCCESS']);
  });

  it('does not end an open workflow whose tasks all succeeded until it is sealed', async () => {
    const mark = h.mark();
    const wf = await h.createWorkflow({ sealed: false, tasks: [noop('a')] });
    await h.complete(wf, ['a']);
    expect((await h.workflow(wf)).state).toBe('RUNNING');
    expect(h.finishedSince(wf, mark)).toEqual([]);

    await h.inWorkflow(wf, seal);
    expect((await h.workflow(wf)).state).toBe('SUCCESS');
    expect(h.finishedSince(wf, mark)).toEqual(['SUCCESS']);
  });

  it('ends an empty sealed workflow SUCCESS at once; an empty open one waits', async () => {
    expect((await h.workflow(await h.createWorkflow({ tasks: [] }))).state).toBe('SUCCESS');
    expect((await h.workflow(await h.createWorkflow({ sealed: false, tasks: [] }))).state).toBe('RUNNING');
  });

  describe('on_failure fail (the default)', () => {
    it('ends the workflow ERROR at once: waiting and ready tasks SKIPPED, running ones asked to cancel', async () => {
      const wf = await h.createWorkflow({
        tasks: [noop('running'), noop('ready'), noop('waiting', { requires: ['ready'] }), noop('f')],
      });
      await h.lease(wf, ['running']);
      const mark = h.mark();
      await h.fail(wf, 'f', { message: 'disk full' }, { retryable: false });

      expect((await h.workflow(wf)).state).toBe('ERROR');
      expect(h.finishedSince(wf, mark)).toEqual(['ERROR']);
      const tasks = await h.tasks(wf);
      for (const name of ['ready', 'waiting']) {
        expect(tasks.get(name)!.state).toBe('SKIPPED');
        expect(tasks.get(name)!.error).toEqual({
          code: 'WORKFLOW_FAILED',
          message: expect.stringContaining('disk full'),
        });
      }
      expect(tasks.get('running')).toMatchObject({ state: 'RUNNING', cancel_requested: true });
      expect(await h.offered(wf, mark)).toEqual([]);

      // The running task's late report is taken; the workflow stays ended, announced once.
      await h.complete(wf, ['running']);
      expect((await h.task(wf, 'running')).state).toBe('SUCCESS');
      expect((await h.workflow(wf)).state).toBe('ERROR');
      expect(h.finishedSince(wf, mark)).toEqual(['ERROR']);
    });
  });

  describe('on_failure continue', () => {
    it('skips only what depends on the failed task, runs the rest, then ends ERROR', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'continue',
        tasks: [noop('f'), noop('dep', { requires: ['f'] }), noop('other'), noop('after', { requires: ['other'] })],
      });
      await h.fail(wf, 'f', {}, { retryable: false });
      expect(await h.named(wf, 'SKIPPED')).toEqual(['dep']);
      expect((await h.workflow(wf)).state).toBe('RUNNING');

      const mark = h.mark();
      await h.complete(wf, ['other']);
      expect(await h.offered(wf, mark)).toEqual(['after']);
      await h.complete(wf, ['after']);
      expect((await h.workflow(wf)).state).toBe('ERROR');
      expect(h.finishedSince(wf, mark)).toEqual(['ERROR']);
    });

    it('ends ERROR once an open workflow with a failure is sealed', async () => {
      const wf = await h.createWorkflow({ sealed: false, on_failure: 'continue', tasks: [noop('f')] });
      await h.fail(wf, 'f', {}, { retryable: false });
      expect((await h.workflow(wf)).state).toBe('RUNNING');
      await h.inWorkflow(wf, seal);
      expect((await h.workflow(wf)).state).toBe('ERROR');
    });
  });

  describe('on_failure rollback', () => {
    it('reverts the tasks that succeeded in reverse dependency order, on their tags, then ends ERROR', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'rollback',
        tasks: [
          noop('db', { tags: ['db'], revert: { type: 'drop-db' }, input: { size: 1 } }),
          noop('app', { tags: ['web'], requires: ['db'], revert: { type: 'stop-app' } }),
          noop('plain', { requires: ['db'] }),
          noop('deploy', { requires: ['app', 'plain'] }),
        ],
      });
      await h.complete(wf, ['db'], { outputs: { db: { url: 'db://1' } } });
      await h.complete(wf, ['app', 'plain']);
      await h.fail(wf, 'deploy', {}, { retryable: false });

      expect((await h.workflow(wf)).state).toBe('RUNNING');
      const tasks = await h.tasks(wf);
      expect([...tasks.keys()].filter((n) => n.endsWith('.revert')).sort()).toEqual(['app.revert', 'db.revert']);
      expect(tasks.get('app.revert')).toMatchObject({ state: 'READY', tags: ['web'], action: { type: 'stop-app' } });
      expect(tasks.get('db.revert')).toMatchObject({
        state: 'WAITING',
        tags: ['db'],
        requires: ['app.revert'],
        input: { task: 'db', input: { size: 1 }, output: { url: 'db://1' } },
      });

      const mark = h.mark();
      await h.complete(wf, ['app.revert']);
      expect(await h.offered(wf, mark)).toEqual(['db.revert']);
      await h.complete(wf, ['db.revert']);
      expect((await h.workflow(wf)).state).toBe('ERROR');
      expect(h.finishedSince(wf, mark)).toEqual(['ERROR']);
    });

    it('stops the rest at once and starts the reverts when nothing runs any more', async () => {
      const wf = await h.createWorkflow({
        on_failure: 'rollback',
        tasks: [
          noop('done', { revert: { type: 'undo' } }),
          noop('running', { revert: { type: 'undo' } }),
          noop('f'),
          noop('waiting', { requires: ['f'] }),
          noop('ready'),
        ],
      });
      await h.complete(wf, ['done']);
      await h.lease(wf, ['running']);
      await h.fail(wf, 'f', {}, { retryable: false });

      expect(await h.named(wf, 'SKIPPED')).toEqual(['ready', 'waiting']);
      expect((await h.task(wf, 'running')).cancel_requested).toBe(true);
      expect((await h.tasks(wf)).has('done.revert')).toBe(false);

      // It finished anyway: it is reverted too.
      await h.complete(wf, ['running']);
      expect(await h.named(wf, 'READY')).toEqual(['done.revert', 'running.revert']);
      await h.complete(wf, ['done.revert', 'running.revert']);
      expect((await h.workflow(wf)).state).toBe('ERROR');
    });

    it('ends ERROR at once when nothing that succeeded has a revert', async () => {
      const wf = await h.createWorkflow({ on_failure: 'rollback', tasks: [noop('a'), noop('f', { requires: ['a'] })] });
      await h.complete(wf, ['a']);
      await h.fail(wf, 'f', {}, { retryable: false });
      expect((await h.workflow(wf)).state).toBe('ERROR');
    });
  });

  it('fails the waiting tasks of a sealed workflow that can never run with DEADLOCK', async () => {
    // A cycle the submission check refuses today, as a database an earlier version wrote may
    // hold it: n requires b, SKIPPED when it came; the rerun of a brings b back, waiting for
    // n's tag while n waits for b.
    const wf = await h.createWorkflow({
      sealed: false,
      on_failure: 'continue',
      tasks: [noop('a'), noop('b', { requires: ['a'], requires_tags: ['tn'] }), noop('other')],
    });
    await h.fail(wf, 'a', {}, { retryable: false });
    await h.addTasks(wf, [noop('n', { tags: ['tn'], requires: ['a'] })]);
    await h.rewriteRequires(wf, 'n', ['b']);
    await h.onTask(wf, 'a', rerun);
    await h.complete(wf, ['a', 'other']);
    expect(await h.named(wf, 'WAITING')).toEqual(['b', 'n']);
    expect((await h.workflow(wf)).state).toBe('RUNNING');

    const mark = h.mark();
    await h.inWorkflow(wf, seal);
    const tasks = await h.tasks(wf);
    expect(tasks.get('b')!.error).toEqual({ code: 'DEADLOCK', message: expect.stringContaining('tags tn') });
    expect(tasks.get('n')!.error).toEqual({ code: 'DEADLOCK', message: expect.stringContaining('tasks b') });
    expect(await h.named(wf, 'ERROR')).toEqual(['b', 'n']);
    expect((await h.workflow(wf)).state).toBe('ERROR');
    expect(h.finishedSince(wf, mark)).toEqual(['ERROR']);
  });
});
