import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { WorkflowState } from '@tagflow/domain';
import { IdColumn, JsonColumn, MsColumn, type JsonObject } from './columns.js';
import type { CreatedBy } from './audit.entity.js';

export type OnFailure = 'fail' | 'continue' | 'rollback';

/** A callback: a URL to POST to when it finishes, and the secret its body is signed with. */
export interface CallbackTarget {
  url: string;
  secret?: string;
}

@Entity('workflow')
export class WorkflowEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 128 })
  name: string;

  /** The namespace it lives in (`[a-z0-9-]`, at most 63). */
  @Column({ type: 'varchar', length: 63, default: 'default' })
  namespace: string;

  @Column({ type: 'text', nullable: true })
  description: string | null;

  @JsonColumn()
  tags: string[];

  @JsonColumn()
  input: JsonObject;

  @Column({ type: 'varchar', length: 16 })
  state: WorkflowState;

  @Column({ type: 'boolean' })
  sealed: boolean;

  @Column({ type: 'varchar', length: 16 })
  on_failure: OnFailure;

  /** Set once the revert tasks of a rollback have been added. */
  @Column({ type: 'boolean', default: false })
  rollback_started: boolean;

  /** Its waiting tasks are still being evaluated, in later transactions (a cascade too large for one). */
  @Column({ type: 'boolean', default: false })
  settle_pending: boolean;

  /** How far the walk through its waiting tasks has come (the last id evaluated; '' for the start). */
  @Column({ type: 'varchar', length: 36, default: '' })
  settle_after: string;

  /** Concurrency limits within it, as created (`{TAG: max_running}`); enforced through the concurrency_limit rows. */
  @JsonColumn({ default: '{}' })
  limits: Record<string, number>;

  /** Where its finish is announced (a signed POST), or null. */
  @JsonColumn({ nullable: true })
  callback: CallbackTarget | null;

  /** Days it is kept once finished (null: RETENTION_DAYS). */
  @Column({ type: 'integer', nullable: true })
  retention_days: number | null;

  /** The key whose request made it. */
  @JsonColumn({ nullable: true })
  created_by: CreatedBy | null;

  @MsColumn({ nullable: false })
  created_at: number;

  @MsColumn({ nullable: false })
  updated_at: number;

  @MsColumn()
  finished_at: number | null;

  /**
   * Not a column: read by the statement that locks the row (WorkflowRepository.lock*). False:
   * none of its tasks selected a tag (`requires_tags`) in that statement's snapshot, so a
   * task's end needs no look for selectors of its tags. The snapshot is taken before the lock
   * is waited for: a selector added by the transaction that held it is missed, which only
   * costs evaluations (readiness.ts release). Undefined when not read.
   */
  selects_tags?: boolean;
}

/** One row per workflow tag, for `GET /workflows?tag=`. */
@Entity('workflow_tag')
export class WorkflowTagEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  workflow_id: string;

  @PrimaryColumn({ type: 'varchar', length: 64 })
  tag: string;
}

/** Every change of a workflow's state or flags, with its time. */
@Entity('workflow_event')
export class WorkflowEventEntity {
  @IdColumn()
  id: number;

  @Column({ type: 'varchar', length: 36 })
  workflow_id: string;

  @Column({ type: 'varchar', length: 16 })
  from_state: WorkflowState;

  @Column({ type: 'varchar', length: 16 })
  to_state: WorkflowState;

  @Column({ type: 'text', nullable: true })
  reason: string | null;

  @MsColumn({ nullable: false })
  at: number;
}
