import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NewTaskEvent } from '@tagflow/persistence';
import { noop } from './testing/factories.js';
import { EngineHarness } from './testing/engine-harness.js';

/** A task's history: one event per transition, written with the transaction that made it. */
describe('task history', () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await EngineHarness.open();
  });
  afterAll(async () => {
    await h?.close();
  });

  const transitions = async (workflowId: string, name: string) =>
    (await h.db.read().events.ofTask((await h.task(workflowId, name)).id)).map((e) => `${e.from_state}>${e.to_state}`);

  it('records every transition of each task once, in order', async () => {
    const wf = await h.createWorkflow({ tasks: [noop('a'), noop('b', { requires: ['a'] })] });
    await h.lease(wf, ['a']);
    await h.complete(wf, ['a']);
    await h.lease(wf, ['b']);
    expect(await transitions(wf, 'a')).toEqual(['null>WAITING', 'WAITING>READY', 'READY>RUNNING', 'RUNNING>SUCCESS']);
    expect(await transitions(wf, 'b')).toEqual(['null>WAITING', 'WAITING>READY', 'READY>RUNNING']);
  });

  it("writes a transaction's events as it commits, none when it fails; its own reads see them", async () => {
    const wf = await h.createWorkflow({ tasks: [noop('a')] });
    const a = await h.task(wf, 'a');
    const before = (await h.db.read().events.ofTask(a.id)).length;
    const event = (reason: string): NewTaskEvent => ({
      task_id: a.id,
      workflow_id: wf,
      from_state: 'READY',
      to_state: 'READY',
      attempt: 1,
      reason,
      at: h.db.now(),
    });
    await expect(
      h.db.transaction(async (repos) => {
        await repos.events.addTaskEvents([event('refused')]);
        expect((await repos.events.ofTask(a.id)).length).toBe(before + 1);
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect((await h.db.read().events.ofTask(a.id)).length).toBe(before);

    await h.db.transaction(async (repos) => {
      await repos.events.addTaskEvents([event('first')]);
      await repos.events.addTaskEvents([event('second'), event('third')]);
    });
    expect((await h.db.read().events.ofTask(a.id)).slice(before).map((e) => e.reason)).toEqual([
      'first',
      'second',
      'third',
    ]);
  });

  it('knows within a transaction whether it left a task of a workflow READY or RUNNING, until the task moves on', async () => {
    const wf = await h.createWorkflow({ tasks: [noop('a'), noop('b', { requires: ['a'] })] });
    const b = await h.task(wf, 'b');
    const other = await h.createWorkflow({ tasks: [noop('c')] });
    await expect(
      h.db.transaction(async (repos) => {
        // a is READY since it was created, by an earlier transaction: this one knows nothing of it.
        expect(repos.events.leftOpen(wf)).toBe(false);
        const change = { ids: [b.id], reason: 'test' } as const;
        expect(await repos.transitions.tasks({ ...change, from: ['WAITING'], to: 'READY' })).toEqual([b.id]);
        expect([repos.events.leftOpen(wf), repos.events.leftOpen(other)]).toEqual([true, false]);
        expect(await repos.transitions.tasks({ ...change, from: ['READY'], to: 'CANCELLED' })).toEqual([b.id]);
        expect(repos.events.leftOpen(wf)).toBe(false);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect((await h.task(wf, 'b')).state).toBe('WAITING');
  });
});
