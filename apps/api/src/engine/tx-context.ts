import type { EntityManager } from 'typeorm';
import type { EnqueueItem } from '@tagflow/queue';

/** Work to do in Redis once the database transaction has committed. */
export class Effects {
  readonly enqueue: EnqueueItem[] = [];
  /** Tasks that reached a terminal state: their waiters are woken. */
  readonly finished: string[] = [];
  /** Data keys written: blocked reads are woken. */
  readonly dataWritten: { workflowId: string; key: string }[] = [];
  /** BullMQ jobs whose lease ended: removed from Redis. */
  readonly releaseJobs: { tagsetId: string; jobId: string; token: string }[] = [];
}

/** One engine operation: its transaction, its clock, and what it will do after commit. */
export interface TxContext {
  em: EntityManager;
  now: number;
  effects: Effects;
}
