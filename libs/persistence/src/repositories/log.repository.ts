import type { EntityManager } from 'typeorm';
import { TaskLogEntity, type LogStreamName } from '../entities/task-log.entity.js';
import { insertRows, sql } from '../dialect.js';
import { hydrate } from '../rows.js';

export interface LogAppend {
  task_id: string;
  workflow_id: string;
  attempt: number;
  stream: LogStreamName;
  data: string;
}

/** Attempts' live output: pieces in order, the last `keepBytes` of each stream kept. */
export class LogRepository {
  constructor(private readonly em: EntityManager) {}

  /**
   * Takes: a piece of output, the clock and how much of its stream to keep. Writes it after
   * the stream's last piece and drops the pieces wholly older than the kept bytes, and those
   * beyond the kept number of pieces.
   * Returns: the piece's id.
   */
  async append(piece: LogAppend, now: number, keep: { bytes: number; pieces: number }): Promise<number> {
    const where = 'task_id = :task AND attempt = :attempt AND stream = :stream';
    const params = { task: piece.task_id, attempt: piece.attempt, stream: piece.stream };
    const { rows } = await sql(
      this.em,
      `SELECT end_offset FROM task_log WHERE ${where} ORDER BY id DESC LIMIT 1`,
      params,
    );
    const bytes = Buffer.byteLength(piece.data);
    const end = Number(rows[0]?.end_offset ?? 0) + bytes;
    await insertRows(this.em, TaskLogEntity, [{ ...piece, bytes, end_offset: end, at: now }]);
    await sql(this.em, `DELETE FROM task_log WHERE ${where} AND end_offset <= :cut`, {
      ...params,
      cut: end - keep.bytes,
    });
    // However small the pieces, at most keep.pieces of them.
    const { rows: beyond } = await sql(
      this.em,
      `SELECT id FROM task_log WHERE ${where} ORDER BY id DESC LIMIT 1 OFFSET ${Math.floor(keep.pieces)}`,
      params,
    );
    if (beyond.length > 0)
      await sql(this.em, `DELETE FROM task_log WHERE ${where} AND id <= :last`, { ...params, last: beyond[0].id });
    const { rows: last } = await sql(
      this.em,
      `SELECT id FROM task_log WHERE ${where} ORDER BY id DESC LIMIT 1`,
      params,
    );
    return Number(last[0].id);
  }

  /** Takes: a task, an attempt, a piece id, optionally a stream, a limit. Returns: the attempt's pieces after that id, in order. */
  async after(
    taskId: string,
    attempt: number,
    afterId: number,
    stream: LogStreamName | undefined,
    limit: number,
  ): Promise<TaskLogEntity[]> {
    const { rows } = await sql(
      this.em,
      `SELECT * FROM task_log WHERE task_id = :task AND attempt = :attempt AND id > :after${stream ? ' AND stream = :stream' : ''} ORDER BY id LIMIT ${Math.floor(limit)}`,
      { task: taskId, attempt, after: afterId, stream },
    );
    return rows.map((r) => hydrate(this.em, TaskLogEntity, r));
  }
}
