import { Column, Entity } from 'typeorm';
import { IdColumn, MsColumn } from './columns.js';

/** Who made a workflow or a task: the key, by id and by name (null in the local open mode). */
export interface CreatedBy {
  key_id: string | null;
  key_name: string;
}

/** One state-changing request: who, what, when, how it ended, on what. */
@Entity('audit')
export class AuditEntity {
  @IdColumn()
  id: number;

  @MsColumn({ nullable: false })
  at: number;

  @Column({ type: 'varchar', length: 36, nullable: true })
  key_id: string | null;

  @Column({ type: 'varchar', length: 128 })
  key_name: string;

  @Column({ type: 'varchar', length: 63 })
  namespace: string;

  @Column({ type: 'varchar', length: 8 })
  method: string;

  @Column({ type: 'varchar', length: 512 })
  path: string;

  @Column({ type: 'integer' })
  status: number;

  @Column({ type: 'varchar', length: 36, nullable: true })
  resource_id: string | null;
}
