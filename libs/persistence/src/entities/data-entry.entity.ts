import { Column, Entity, PrimaryColumn } from 'typeorm';
import { JsonColumn, MsColumn, type Json } from './columns.js';

/** One key of a workflow's data space. Writes never block; reads may wait for a key. */
@Entity('data_entry')
export class DataEntryEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  workflow_id: string;

  @PrimaryColumn({ type: 'varchar', length: 128 })
  key: string;

  @JsonColumn()
  value: Json;

  @MsColumn({ nullable: false })
  written_at: number;

  /** The task whose lease wrote it, when a task did. */
  @Column({ type: 'varchar', length: 36, nullable: true })
  task_id: string | null;
}
