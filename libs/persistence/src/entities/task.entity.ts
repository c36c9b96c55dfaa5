import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { RetryPolicy, TaskState } from '@tagflow/domain';
import { IdColumn, JsonColumn, MsColumn, type Json, type JsonObject } from './columns.js';
import type { CreatedBy } from './audit.entity.js';
import type { CallbackTarget } from './workflow.entity.js';

export type TaskKind = 'task' | 'handler' | 'revert';
export type ActionSpec = { type: string } & JsonObject;
export interface TaskErrorInfo {
  message: string;
  code: string | null;
}
/** How the current lease ended, so a repeated report can be answered the same way. */
export type LeaseOutcome = 'complete' | 'fail' | 'expired' | 'cancel';

@Entity('task')
export class TaskEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  workflow_id: string;

  /** The namespace it lives in (`[a-z0-9-]`, at most 63). */
  @Column({ type: 'varchar', length: 63, default: 'default' })
  namespace: string;

  @Column({ type: 'varchar', length: 128 })
  name: string;

  @Column({ type: 'varchar', length: 16 })
  kind: TaskKind;

  /** For a handler: the task whose failure it handles. For a revert: the task it undoes. */
  @Column({ type: 'varchar', length: 36, nullable: true })
  parent_task_id: string | null;

  @JsonColumn()
  tags: string[];

  /** Id of the queue this task is dispatched through (one per distinct tag set). */
  @Column({ type: 'varchar', length: 32 })
  tagset_id: string;

  @JsonColumn()
  action: ActionSpec;

  @JsonColumn()
  input: JsonObject;

  @JsonColumn()
  requires: string[];

  @JsonColumn()
  requires_tags: string[];

  /** Data keys this task declares it writes. */
  @JsonColumn({ default: '[]' })
  produces: string[];

  /** Data keys its input reads ({{ data.KEY }}): it waits until each is written. */
  @JsonColumn({ default: '[]' })
  data_requires: string[];

  @JsonColumn()
  retry: RetryPolicy;

  @Column({ type: 'integer', nullable: true })
  timeout_s: number | null;

  @Column({ type: 'integer' })
  lease_s: number;

  @JsonColumn()
  on_error: { codes?: string[]; run: JsonObject[] }[];

  @JsonColumn({ nullable: true })
  revert: ActionSpec | null;

  @Column({ type: 'varchar', length: 16 })
  state: TaskState;

  @Column({ type: 'integer' })
  attempt: number;

  /** Attempts its workers gave back while stopping (WORKER_SHUTDOWN); the first few do not count against the retry budget. */
  @Column({ type: 'integer', default: 0 })
  handbacks: number;

  @Column({ type: 'boolean', default: false })
  handled: boolean;

  /** ERROR whose on_error handlers are running. */
  @Column({ type: 'boolean', default: false })
  handling: boolean;

  @Column({ type: 'boolean', default: false })
  cancel_requested: boolean;

  /** The input the worker received for the current attempt, references replaced; null when it has none. */
  @JsonColumn({ nullable: true })
  resolved_input: JsonObject | null;

  @JsonColumn({ nullable: true })
  output: JsonObject | null;

  @JsonColumn({ nullable: true })
  error: TaskErrorInfo | null;

  @Column({ type: 'text', nullable: true })
  stdout: string | null;

  @Column({ type: 'text', nullable: true })
  stderr: string | null;

  @Column({ type: 'integer', nullable: true })
  exit_code: number | null;

  @JsonColumn({ nullable: true })
  progress: Json;

  @Column({ type: 'varchar', length: 36, nullable: true })
  worker_id: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  lease_token: string | null;

  @MsColumn()
  lease_expires_at: number | null;

  /** When the API fails the current attempt itself: started_at + timeout_s + TIMEOUT_GRACE_MS (libs/domain). */
  @MsColumn()
  deadline_at: number | null;

  @Column({ type: 'varchar', length: 16, nullable: true })
  lease_outcome: LeaseOutcome | null;

  /** The key whose request added it (for handlers and reverts: the task's they answer). */
  @JsonColumn({ nullable: true })
  created_by: CreatedBy | null;

  @MsColumn({ nullable: false })
  created_at: number;

  @MsColumn({ nullable: false })
  updated_at: number;

  @MsColumn()
  ready_at: number | null;

  /** -100..100: higher first among ready tasks a poll fits. */
  @Column({ type: 'integer', default: 0 })
  priority: number;

  /** Not READY before this time, even with its dependencies met. */
  @MsColumn()
  not_before: number | null;

  /** Set while that time alone holds it WAITING: when to evaluate it again. */
  @MsColumn()
  wake_at: number | null;

  /** Where its finish is announced (a signed POST), or null. */
  @JsonColumn({ nullable: true })
  callback: CallbackTarget | null;

  /** READY but kept out of the queue by a full concurrency limit (`<workflow id or ''>|<tag>`); queued again once it has room. */
  @Column({ type: 'varchar', length: 101, nullable: true })
  held_limit: string | null;

  @MsColumn()
  started_at: number | null;

  @MsColumn()
  finished_at: number | null;
}

/** One row per (task, tag): tag selectors and `?tag=` filters look members up here. */
@Entity('task_tag')
export class TaskTagEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  task_id: string;

  @PrimaryColumn({ type: 'varchar', length: 64 })
  tag: string;

  @Column({ type: 'varchar', length: 36 })
  workflow_id: string;
}

/**
 * One row per dependency a task declares: kind 'name' (requires), 'tag' (requires_tags),
 * 'data' (a data key it reads), or 'produces' (a data key it writes). Finding the
 * dependents of a finished task, or the producers of a key, is one indexed lookup.
 */
@Entity('task_dep')
export class TaskDepEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  task_id: string;

  @PrimaryColumn({ type: 'varchar', length: 8 })
  kind: 'name' | 'tag' | 'data' | 'produces';

  @PrimaryColumn({ type: 'varchar', length: 128 })
  dep_key: string;

  @Column({ type: 'varchar', length: 36 })
  workflow_id: string;
}

/** Names that on_error handlers will take when they run: no other task may take them. */
@Entity('reserved_name')
export class ReservedNameEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  workflow_id: string;

  @PrimaryColumn({ type: 'varchar', length: 128 })
  name: string;

  @Column({ type: 'varchar', length: 36 })
  owner_task_id: string;
}

/** Every task state transition, with its time. */
@Entity('task_event')
export class TaskEventEntity {
  @IdColumn()
  id: number;

  @Column({ type: 'varchar', length: 36 })
  task_id: string;

  @Column({ type: 'varchar', length: 36 })
  workflow_id: string;

  @Column({ type: 'varchar', length: 16, nullable: true })
  from_state: TaskState | null;

  @Column({ type: 'varchar', length: 16 })
  to_state: TaskState;

  @Column({ type: 'integer' })
  attempt: number;

  @Column({ type: 'text', nullable: true })
  reason: string | null;

  @MsColumn({ nullable: false })
  at: number;
}
