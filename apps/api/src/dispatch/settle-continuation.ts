import { Inject, Injectable } from '@nestjs/common';
import { isTerminalWorkflow } from '@tagflow/domain';
import { Database } from '@tagflow/persistence';
import { JsonLogger } from '../common/logger.js';
import { continueStopping } from '../engine/completion.js';
import { Engine } from '../engine/engine.js';
import { continueSettling, settled } from '../engine/readiness.js';

/** Marked workflows a tick takes a step of, at most. */
const WORKFLOWS_PER_TICK = 5;

/**
 * Workflows an operation left evaluations for later (EVALUATION_BUDGET), or a stop left
 * open tasks for later: one step each per tick, each step its own transaction under the
 * workflow's lock. Where a walk stands lives in the workflow's row, so any replica may
 * take the next step and none keeps anything in memory (readiness.ts continueSettling).
 */
@Injectable()
export class SettleContinuation {
  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {}

  async tick(): Promise<void> {
    let ids: string[];
    try {
      ids = await this.db.read().workflows.settlePending(WORKFLOWS_PER_TICK);
    } catch (e) {
      this.logger.event('warn', 'reconciler', 'could not look for workflows left settling', { error: String(e) });
      return;
    }
    // One step per workflow a tick. Steps back to back starved a report waiting for the
    // workflow's lock on PostgreSQL (a row lock is not granted in order): it hit lock_timeout.
    for (const id of ids) await this.step(id);
  }

  private async step(id: string): Promise<void> {
    const started = Date.now();
    try {
      await this.engine.inWorkflow(id, async (uow, wf) => {
        if (!wf.settle_pending) return; // another replica took the last step
        if (!isTerminalWorkflow(wf.state)) {
          await continueSettling(uow, wf);
          return;
        }
        // A stop left open tasks for later (completion.ts STOP_BATCH).
        if (await continueStopping(uow, wf)) await settled(uow, wf);
      });
    } catch (e) {
      this.logger.event('warn', 'reconciler', 'could not continue settling a workflow; trying again later', {
        workflow_id: id,
        error: String(e),
      });
      return;
    }
    const ms = Date.now() - started;
    // Reports on this workflow wait for the step: a slow one is worth knowing about.
    if (ms > 2000)
      this.logger.event('warn', 'reconciler', "a continuation step held its workflow's lock for long", {
        workflow_id: id,
        ms,
      });
  }
}
