import type { EntityManager } from 'typeorm';
import { DataEntryEntity } from '../entities/data-entry.entity.js';
import { inChunks, sql } from '../dialect.js';
import { hydrate, persisted } from '../rows.js';

/** A workflow's data space (task outputs are read from the task table: TaskRepository.outputs). */
export class DataRepository {
  constructor(private readonly em: EntityManager) {}

  /** Takes: a workflow, a key, a value, the writing task (or null) and the clock. Writes the key, replacing an older value. */
  async write(workflowId: string, key: string, value: unknown, taskId: string | null, now: number): Promise<void> {
    // JSON null is a value like any other, kept as the text 'null' (a SQL NULL would be no value).
    const stored = value === null ? 'null' : persisted(this.em, DataEntryEntity, 'value', value);
    const { affected } = await sql(
      this.em,
      'UPDATE data_entry SET value = :v, written_at = :now, task_id = :task WHERE workflow_id = :wf AND key = :key',
      {
        v: stored,
        now,
        task: taskId,
        wf: workflowId,
        key,
      },
    );
    if (affected === 0)
      await sql(
        this.em,
        'INSERT INTO data_entry (workflow_id, key, value, written_at, task_id) VALUES (:wf, :key, :v, :now, :task)',
        { wf: workflowId, key, v: stored, now, task: taskId },
      );
  }

  /** Takes: a workflow and a key. Returns: the entry, or null. */
  async get(workflowId: string, key: string): Promise<DataEntryEntity | null> {
    const { rows } = await sql(this.em, 'SELECT * FROM data_entry WHERE workflow_id = :wf AND key = :key', {
      wf: workflowId,
      key,
    });
    return rows[0] ? hydrate(this.em, DataEntryEntity, rows[0]) : null;
  }

  /** Takes: a workflow and keys. Returns: the values of those written. */
  async values(workflowId: string, keys: readonly string[]): Promise<Map<string, unknown>> {
    if (keys.length === 0) return new Map();
    const rows = await inChunks(
      keys,
      async (slice) =>
        (
          await sql(this.em, 'SELECT key, value FROM data_entry WHERE workflow_id = :wf AND key IN (:keys)', {
            wf: workflowId,
            keys: slice,
          })
        ).rows,
    );
    return new Map(
      rows.map((r) => {
        const e = hydrate(this.em, DataEntryEntity, r);
        return [e.key, e.value as unknown];
      }),
    );
  }

  /** Takes: a workflow and keys. Returns: those written. */
  async written(workflowId: string, keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const rows = await inChunks(
      keys,
      async (slice) =>
        (
          await sql(this.em, 'SELECT key FROM data_entry WHERE workflow_id = :wf AND key IN (:keys)', {
            wf: workflowId,
            keys: slice,
          })
        ).rows,
    );
    return new Set(rows.map((r) => r.key as string));
  }

  /** Takes: a workflow. Returns: its keys with who wrote them and when, by key (no values). */
  async keys(workflowId: string): Promise<Pick<DataEntryEntity, 'key' | 'written_at' | 'task_id'>[]> {
    const { rows } = await sql(
      this.em,
      'SELECT key, written_at, task_id FROM data_entry WHERE workflow_id = :wf ORDER BY key',
      { wf: workflowId },
    );
    return rows.map((r) => hydrate(this.em, DataEntryEntity, r));
  }
}
