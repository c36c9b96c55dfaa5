import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SettleContinuation } from '../dispatch/settle-continuation.js';
import type { Engine } from './engine.js';
import { EngineHarness } from './testing/engine-harness.js';
import type { TaskSpecLike } from './task-spec.js';

/**
 * A release larger than the evaluation budget is finished in steps by the reconciler's
 * continuation. Whatever the interleaving of reports, steps and replicas, a workflow whose
 * tasks all succeed ends SUCCESS: no task is failed as deadlocked while an evaluation
 * that could release it is still pending.
 */

const BUDGET = 6;

interface Replica {
  engine: Engine;
  continuation: SettleContinuation;
}

function replicas(h: EngineHarness, n: number): Replica[] {
  return Array.from({ length: n }, () => {
    const engine = h.replica();
    return { engine, continuation: new SettleContinuation(h.db, engine, h.logger) };
  });
}

const noop = (name: string, extra: Partial<TaskSpecLike> = {}): TaskSpecLike => ({
  name,
  action: { type: 'noop' },
  ...extra,
});

/** Steps of every replica until no workflow is marked for continuation (bounded). */
async function drainContinuations(h: EngineHarness, rs: Replica[]): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if ((await h.db.read().workflows.settlePending(1)).length === 0) return;
    await rs[i % rs.length].continuation.tick();
  }
  throw new Error('continuations did not end within 1000 ticks');
}

/** Completes READY tasks (in batches through the replicas) and drains continuations until the workflow ends. */
async function runToEnd(h: EngineHarness, rs: Replica[], wfId: string): Promise<string> {
  for (let round = 0; round < 1000; round++) {
    const wf = await h.workflow(wfId);
    if (wf.state !== 'RUNNING') return wf.state;
    const ready = await h.named(wfId, 'READY');
    if (ready.length > 0) await h.complete(wfId, ready, { engine: rs[round % rs.length].engine });
    else await drainContinuations(h, rs);
  }
  throw new Error('the workflow did not end within 1000 rounds');
}

describe('a settle continued in steps (evaluation budget 6)', () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await EngineHarness.open({ evaluationBudget: BUDGET });
  });
  afterAll(async () => {
    await h?.close();
  });

  // The shape that lost deferred work: a second root completes while (or after) the first
  // one's continuation walks the waiting tasks, on one replica or two.
  it.each([1, 2])(
    "ends SUCCESS when a second root completes during the first root's continuation (%i replicas)",
    async (n) => {
      const rs = replicas(h, n);
      const fillers = Array.from({ length: 2 * BUDGET }, (_, i) => noop(`f${i}`, { requires: ['z'] }));
      const dependents = Array.from({ length: BUDGET + 3 }, (_, i) => noop(`d${i}`, { requires: ['r1', 'r2'] }));
      // Ids follow creation order, and so does the continuation's walk: dependents first.
      const wfId = await h.createWorkflow({ tasks: [noop('r1'), noop('r2'), noop('z'), ...dependents, ...fillers] });

      await h.complete(wfId, ['r1'], { engine: rs[0].engine });
      expect((await h.workflow(wfId)).settle_pending).toBe(true);
      // Every replica walks part of the way, past the dependents the next release will defer.
      for (const r of rs) for (let i = 0; i < 2; i++) await r.continuation.tick();
      await h.complete(wfId, ['r2'], { engine: rs[n - 1].engine });
      await drainContinuations(h, rs);

      expect(await h.named(wfId, 'ERROR')).toEqual([]);
      expect(await h.named(wfId, 'READY')).toEqual(expect.arrayContaining(dependents.map((d) => d.name!)));
      expect(await runToEnd(h, rs, wfId)).toBe('SUCCESS');
    },
  );

  it('ends SUCCESS under random interleavings of reports, continuation steps and replicas', async () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= 40; seed++) {
      const random = mulberry32(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
      const rs = replicas(h, 1 + Math.floor(random() * 3));
      // Roots, dependents of random sets of roots (more than a budget of them), and a
      // second layer waiting by tag for the first.
      const roots = Array.from({ length: 2 + Math.floor(random() * 3) }, (_, i) => noop(`r${i}`));
      const layer = Array.from({ length: BUDGET + Math.floor(random() * 3 * BUDGET) }, (_, i) => {
        const requires = roots.filter(() => random() < 0.5).map((r) => r.name!);
        return noop(`d${i}`, { requires: requires.length ? requires : [pick(roots).name!], tags: ['layer1'] });
      });
      const second = Array.from({ length: Math.floor(random() * 2 * BUDGET) }, (_, i) =>
        noop(`e${i}`, { requires_tags: ['layer1'] }),
      );
      const wfId = await h.createWorkflow({ tasks: [...roots, ...layer, ...second] });

      for (let step = 0; step < 400; step++) {
        const wf = await h.workflow(wfId);
        if (wf.state !== 'RUNNING') break;
        const ready = await h.named(wfId, 'READY');
        if (ready.length > 0 && random() < 0.6) {
          const batch = ready.filter(() => random() < 0.5).slice(0, 1 + Math.floor(random() * 4));
          await h.complete(wfId, batch.length ? batch : [pick(ready)], { engine: pick(rs).engine });
        } else {
          await pick(rs).continuation.tick();
        }
      }
      const state = await runToEnd(h, rs, wfId);
      const errors = await h.named(wfId, 'ERROR');
      if (state !== 'SUCCESS' || errors.length > 0)
        failures.push(`seed ${seed} (${rs.length} replicas): ${state}, ERROR tasks ${errors.join(' ')}`);
    }
    expect(failures).toEqual([]);
  });
});

/** A small seeded generator, so a failing interleaving can be run again by its seed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
