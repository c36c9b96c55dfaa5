import { Column, Entity, PrimaryColumn } from 'typeorm';
import { JsonColumn, MsColumn } from './columns.js';

@Entity('worker')
export class WorkerEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 128 })
  name: string;

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
}
