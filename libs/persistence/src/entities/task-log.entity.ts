import { Column, Entity } from 'typeorm';
import { IdColumn, MsColumn } from './columns.js';

export type LogStreamName = 'stdout' | 'stderr';

/** A piece of an attempt's live output, as a worker appended it. Its id orders an attempt's pieces of both streams. */
@Entity('task_log')
export class TaskLogEntity {
  @IdColumn()
  id: number;

  @Column({ type: 'varchar', length: 36 })
  task_id: string;

  @Column({ type: 'varchar', length: 36 })
  workflow_id: string;

  @Column({ type: 'integer' })
  attempt: number;

  @Column({ type: 'varchar', length: 8 })
  stream: LogStreamName;

  @Column({ type: 'text' })
  data: string;

  /** UTF-8 bytes of `data`. */
  @Column({ type: 'integer' })
  bytes: number;

  /** Bytes of this stream of this attempt up to and including this piece (older pieces are dropped beyond the kept size). */
  @Column({ type: 'bigint', transformer: { to: (v: number) => v, from: (v: string | number) => Number(v) } })
  end_offset: number;

  @MsColumn({ nullable: false })
  at: number;
}
