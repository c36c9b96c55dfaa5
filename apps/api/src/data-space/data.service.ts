import { HttpException, HttpStatus, Injectable } from '@nestjs/common';
import { DATA_KEY_MAX_LENGTH, DATA_KEY_PATTERN, isoOrNull, isTerminalWorkflow } from '@tagflow/domain';
import { Database } from '@tagflow/persistence';
import { ApiError, badRequest, conflict, notFound, tooLarge } from '../common/errors.js';
import { Engine } from '../engine/engine.js';
import { writeData } from '../engine/reports.js';
import { LongWaits } from '../long-wait/long-waits.js';
import { toDataResponse, type DataEntryResponse } from './data.dto.js';
import type { WorkflowCheck } from '../auth/grants.js';

const VALUE_MAX_BYTES = 256 * 1024;
const TASK_OUTPUT_KEY = /^tasks\.([A-Za-z0-9_.-]+)\.output$/;

/**
 * A workflow's data space: writes never block; reads may wait until a key is written
 * (from any replica: writes are announced on the Redis bus). Task outputs are readable
 * as `tasks.NAME.output`.
 */
@Injectable()
export class DataService {
  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
    private readonly waits: LongWaits,
  ) {}

  async put(
    workflowId: string,
    key: string,
    value: unknown,
    taskId: string | null,
    namespace: string,
    check?: WorkflowCheck,
  ): Promise<DataEntryResponse> {
    checkKey(key);
    if (key.startsWith('tasks.'))
      throw badRequest(`data key ${key} is reserved: keys under "tasks." are task outputs, read-only`, [
        { field: 'key', errors: ['reserved'] },
      ]);
    const size = Buffer.byteLength(JSON.stringify(value));
    if (size > VALUE_MAX_BYTES) throw tooLarge(`value is ${size} bytes; the limit is ${VALUE_MAX_BYTES}`);
    await this.engine.inWorkflow(
      workflowId,
      async (uow, wf) => {
        await check?.(uow.repos, wf);
        if (isTerminalWorkflow(wf.state))
          throw conflict(`workflow ${workflowId} is ${wf.state}: its data space is read-only now`, { state: wf.state });
        await writeData(uow, wf, key, value, taskId);
      },
      namespace,
    );
    return (await this.read(workflowId, key))!;
  }

  /** The entry, waiting up to waitS for it; 404 with `pending: true` when the wait ends first. */
  async get(
    workflowId: string,
    key: string,
    waitS: number | undefined,
    namespace: string,
    stop?: AbortSignal,
  ): Promise<DataEntryResponse> {
    if (!TASK_OUTPUT_KEY.test(key)) checkKey(key);
    await this.requireWorkflow(workflowId, namespace);
    const now = await this.read(workflowId, key);
    if (now) return now;
    const found = waitS
      ? await this.waits.until(
          LongWaits.data(workflowId, key),
          Date.now() + waitS * 1000,
          () => this.read(workflowId, key),
          undefined,
          stop,
        )
      : undefined;
    if (found) return found;
    throw new HttpException(
      {
        statusCode: 404,
        error: 'Not Found',
        code: 'DATA_PENDING',
        message: `data key ${key} of workflow ${workflowId} is not written yet`,
        pending: true,
      },
      HttpStatus.NOT_FOUND,
    );
  }

  async list(workflowId: string, namespace: string): Promise<{ items: Omit<DataEntryResponse, 'value'>[] }> {
    await this.requireWorkflow(workflowId, namespace);
    const repos = this.db.read();
    const entries = await repos.data.keys(workflowId);
    const outputs = await repos.tasks.succeeded(workflowId);
    const items = [
      ...entries.map((e) => ({ key: e.key, written_at: isoOrNull(e.written_at), task_id: e.task_id })),
      ...outputs.map((t) => ({ key: `tasks.${t.name}.output`, written_at: isoOrNull(t.finished_at), task_id: t.id })),
    ];
    return { items };
  }

  /** A task's lease may write only the keys the task declares in `produces` (403 naming the key). */
  checkProduces(task: { name: string; produces: string[] }, key: string): void {
    if (!task.produces.includes(key)) {
      throw new ApiError(
        HttpStatus.FORBIDDEN,
        `task ${task.name} may write only the keys it produces (${task.produces.join(', ') || 'none'}), not ${key}`,
        { key },
        'GRANT_MISSING',
      );
    }
  }

  private async read(workflowId: string, key: string): Promise<DataEntryResponse | undefined> {
    const output = TASK_OUTPUT_KEY.exec(key);
    if (output) {
      const t = (await this.db.read().tasks.outputs(workflowId, [output[1]])).find((o) => o.state === 'SUCCESS');
      return t
        ? toDataResponse({ key, value: t.output ?? {}, written_at: t.finished_at ?? 0, task_id: t.id })
        : undefined;
    }
    const e = await this.db.read().data.get(workflowId, key);
    return e ? toDataResponse(e) : undefined;
  }

  private async requireWorkflow(id: string, namespace: string): Promise<void> {
    if (!(await this.db.read().workflows.get(id, namespace))) throw notFound('workflow', id);
  }
}

function checkKey(key: string): void {
  if (key.length > DATA_KEY_MAX_LENGTH || !DATA_KEY_PATTERN.test(key)) {
    throw badRequest(
      `data key "${key.slice(0, 200)}" must be a dotted name of [A-Za-z0-9_-] parts, at most ${DATA_KEY_MAX_LENGTH} characters`,
      [{ field: 'key', errors: ['invalid data key'] }],
    );
  }
}
