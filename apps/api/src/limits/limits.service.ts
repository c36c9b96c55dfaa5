import { Injectable } from '@nestjs/common';
import { LIMITS } from '@tagflow/domain';
import { Database, limitKeyOf, type LimitRow, type Repositories } from '@tagflow/persistence';
import type { ConcurrencyLimit } from '@tagflow/client';
import { badRequest, notFound, unprocessable } from '../common/errors.js';
import { Engine } from '../engine/engine.js';
import { releaseHeld } from '../engine/limits.js';

/**
 * Namespace-wide concurrency limits (`/v1/limits`). Setting or removing one releases at
 * once the tasks it held that now have room; lowering one never stops a running task.
 */
@Injectable()
export class LimitsService {
  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
  ) {}

  async list(namespace: string): Promise<{ items: ConcurrencyLimit[] }> {
    const repos = this.db.read();
    const rows = await repos.limits.list(namespace, '', LIMITS.limitsPerNamespace);
    return { items: await view(repos, rows) };
  }

  async get(namespace: string, tag: string): Promise<ConcurrencyLimit> {
    checkTag(tag);
    const repos = this.db.read();
    const row = await repos.limits.get({ namespace, workflow_id: '', tag });
    if (!row) throw notFound('limit on tag', tag);
    return (await view(repos, [row]))[0];
  }

  async put(namespace: string, tag: string, maxRunning: number): Promise<ConcurrencyLimit> {
    checkTag(tag);
    await this.engine.inTransaction(async (uow) => {
      const scope = { namespace, workflow_id: '', tag };
      if (
        !(await uow.repos.limits.get(scope)) &&
        (await uow.repos.limits.count(namespace)) >= LIMITS.limitsPerNamespace
      ) {
        throw unprocessable(
          `namespace ${namespace} already has ${LIMITS.limitsPerNamespace} limits, the most it may have`,
        );
      }
      await uow.repos.limits.put({ ...scope, max_running: maxRunning }, uow.now);
      await releaseHeld(uow, [namespace]);
    });
    return this.get(namespace, tag);
  }

  async remove(namespace: string, tag: string): Promise<void> {
    checkTag(tag);
    const existed = await this.engine.inTransaction(async (uow) => {
      const gone = await uow.repos.limits.remove({ namespace, workflow_id: '', tag });
      if (gone) await releaseHeld(uow, [namespace]);
      return gone;
    });
    if (!existed) throw notFound('limit on tag', tag);
  }
}

function checkTag(tag: string): void {
  if (tag.length > LIMITS.tagMaxLength || !LIMITS.tagPattern.test(tag)) {
    throw badRequest(`tag must be at most ${LIMITS.tagMaxLength} characters matching ${LIMITS.tagPattern.source}`, [
      { field: 'tag', errors: ['invalid tag'] },
    ]);
  }
}

/** Limits as the API shows them: with what runs under each and what waits for room. */
export async function view(repos: Repositories, rows: readonly LimitRow[]): Promise<ConcurrencyLimit[]> {
  const usage = await repos.limits.usage(rows);
  return rows.map((r) => {
    const u = usage.get(limitKeyOf(r))!;
    return {
      tag: r.tag,
      max_running: r.max_running,
      running: u.running,
      held: u.held,
      created_at: new Date(r.created_at).toISOString(),
      updated_at: new Date(r.updated_at).toISOString(),
    };
  });
}
