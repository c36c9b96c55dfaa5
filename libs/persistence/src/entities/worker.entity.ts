import { Column, Entity, PrimaryColumn } from 'typeorm';
import { JsonColumn, MsColumn } from './columns.js';

@Entity('worker')
export class WorkerEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 128 })
  name: string;

  /** The namespace it lives in (`[a-z0-9-]`, at most 63). */
  @Column({ type: 'varchar', length: 63, default: 'default' })
  namespace: string;

  @JsonColumn()
  tags: string[];

  @Column({ type: 'varchar', length: 255, nullable: true })
  hostname: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  version: string | null;

  @MsColumn({ nullable: false })
  created_at: number;

  @MsColumn({ nullable: false })
  last_seen_at: number;

  /** When it handed a task back as it stopped (WORKER_SHUTDOWN); its polls are refused from then on. */
  @MsColumn()
  stopping_at: number | null;

  /** The key that registered it (null: the open mode, or a worker from before keys were tracked); only that key polls under its id. */
  @Column({ type: 'varchar', length: 36, nullable: true })
  key_id: string | null;
}
