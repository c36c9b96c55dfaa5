import { Inject, Injectable } from '@nestjs/common';
import { isTerminalWorkflow } from '@tagflow/domain';
import { Database } from '@tagflow/persistence';
import { JsonLogger } from '../common/logger.js';
import { continueStopping } from '../engine/completion.js';
import { Engine } from '../engine/engine.js';
import { continueSettling, settled } from '../engine/readiness.js';

/**
 * Workflows whose waiting tasks an operation left for later (EVALUATION_BUDGET): a
 * budget's worth of them evaluated per workflow and tick, each step its own transaction
 * under the workflow's lock, in id order. Once a walk through all of them left nothing
 * for later, the mark goes and the workflow-wide questions (done? stuck?) are asked.
 */
@Injectable()
export class SettleContinuation {
  /** Where this replica is in each workflow's continuation, and whether that walk left nothing for later so far. */
  private readonly walks = new Map<string, { after: string; clean: boolean }>();

  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {}

  /** One tick's worth: a step for each of a few marked workflows. */
  async tick(): Promise<void> {
    let ids: string[];
    try {
      ids = await this.db.read().workflows.settlePending(5);
    } catch (e) {
      this.logger.event('warn', 'reconciler', 'could not look for workflows left settling', { error: String(e) });
      return;
    }
    // One step per workflow a tick. Steps back to back starved a report waiting for the
    // workflow's lock on PostgreSQL (a row lock is not granted in order): it hit lock_timeout.
    for (const id of ids) await this.continueOne(id);
    if (this.walks.size > 10_000) this.walks.clear();
  }

  /** One step of a workflow's continuation. */
  private async continueOne(id: string): Promise<'done' | 'more' | 'failed'> {
    const walk = this.walks.get(id) ?? { after: '', clean: true };
    const started = Date.now();
    try {
      const step = await this.engine.inWorkflow(id, async (uow, wf) => {
        if (!wf.settle_pending) return 'done' as const;
        if (isTerminalWorkflow(wf.state)) {
          // A stop left open tasks for later (completion.ts STOP_BATCH).
          if (!(await continueStopping(uow, wf))) return 'again' as const;
          await settled(uow, wf);
          return 'done' as const;
        }
        const last = await continueSettling(uow, wf, walk.after);
        if (last === null) {
          if (!walk.clean) return 'again' as const;
          await settled(uow, wf);
          return 'done' as const;
        }
        await uow.settle();
        return { last, deferred: uow.isDeferred(wf.id) };
      });
      const ms = Date.now() - started;
      // Reports on this workflow wait for the step: a slow one is worth knowing about.
      if (ms > 2000) this.logger.event('warn', 'reconciler', "a continuation step held its workflow's lock for long", { workflow_id: id, ms });
      if (step === 'done') {
        this.walks.delete(id);
        return 'done';
      }
      this.walks.set(id, step === 'again' ? { after: '', clean: true } : { after: step.last, clean: walk.clean && !step.deferred });
      return 'more';
    } catch (e) {
      this.logger.event('warn', 'reconciler', 'could not continue settling a workflow; trying again later', { workflow_id: id, error: String(e) });
      this.walks.delete(id);
      return 'failed';
    }
  }
}
