import { Injectable } from '@nestjs/common';
import { clientTags, PollIndex } from '@tagflow/domain';
import type { ClaimJob, TaskEntity } from '@tagflow/persistence';
import { randomUUID } from 'node:crypto';
import { coveredBy } from '../auth/grants.js';
import type { HandOffPlan, HandOffPort, ReadyTask } from '../engine/hand-off.js';
import { DIRECT_LEASE_PREFIX } from './leases.js';

/** A long-poll parked on this replica, open to tasks handed to it directly. */
export interface ParkedPoll {
  /** The poll's capabilities and its namespace's tag. */
  tags: string[];
  maxTasks: number;
  workerId: string | null;
  /** The caller's tag grants (absent: all). */
  grants?: readonly string[];
  /** Aborted: it takes nothing more. */
  gone?: AbortSignal;
  /** Answered or failed: parked no more, not even by a plan that is cancelled after. */
  done?: boolean;
  /** Reserved for a plan: the poll waits for its outcome before answering. */
  reserved?: Promise<void>;
  /** After commit: the tasks leased for it (possibly none). */
  accept(leased: readonly TaskEntity[]): void;
}

/**
 * The polls parked on this replica, and the hand-off the engine asks them for (HandOffPort):
 * a task made READY by a change on this replica goes to the first parked poll it fits (its
 * tags, the poll's room and grants), highest priority first, its lease written in the
 * change's own transaction. A reserved poll takes nothing else until the transaction has
 * committed (deliver) or not (cancel).
 */
@Injectable()
export class ParkedPolls implements HandOffPort {
  private readonly polls = new PollIndex<ParkedPoll>();

  get size(): number {
    return this.polls.size;
  }

  park(poll: ParkedPoll): void {
    if (!poll.done) this.polls.add(poll);
  }

  leave(poll: ParkedPoll): void {
    this.polls.delete(poll);
  }

  plan(ready: readonly ReadyTask[]): HandOffPlan | null {
    if (this.polls.size === 0) return null;
    const chosen = new Map<ParkedPoll, ClaimJob[]>();
    // More ready than parked polls take: the highest priority first (sort is stable: then in order).
    for (const r of [...ready].sort((a, b) => b.priority - a.priority)) {
      if (r.delayMs > 0) continue;
      const poll = this.polls.first(
        r.tags,
        (p) => !p.gone?.aborted && (!p.grants || coveredBy(p.grants, clientTags(r.tags))),
      );
      if (!poll) continue;
      const jobs = chosen.get(poll) ?? [];
      chosen.set(poll, jobs);
      jobs.push({
        taskId: r.taskId,
        attempt: r.attempt,
        tagsetId: r.tagsetId,
        token: `${DIRECT_LEASE_PREFIX}${randomUUID()}`,
        workerId: poll.workerId,
      });
      // Full: out of the index now (a burst of n tasks for n polls looks at each poll once, not n times).
      if (jobs.length >= poll.maxTasks) this.polls.delete(poll);
    }
    if (chosen.size === 0) return null;
    let settle!: () => void;
    const outcome = new Promise<void>((resolve) => (settle = resolve));
    for (const poll of chosen.keys()) {
      this.polls.delete(poll);
      poll.reserved = outcome;
    }
    const release = () => {
      for (const poll of chosen.keys()) poll.reserved = undefined;
      settle();
    };
    return {
      jobs: [...chosen.values()].flat(),
      deliver: (leased) => {
        const byToken = new Map(leased.map((t) => [t.lease_token, t]));
        for (const [poll, jobs] of chosen) poll.accept(jobs.flatMap((j) => byToken.get(j.token) ?? []));
        release();
      },
      cancel: () => {
        for (const poll of chosen.keys()) if (!poll.gone?.aborted && !poll.done) this.polls.add(poll);
        release();
      },
    };
  }
}
