import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { asQueueTags, clientTags, LIMITS, namespaceTag, ResolutionError, TagsetIndex } from '@tagflow/domain';
import type { TaskEntity } from '@tagflow/persistence';
import { Bus, JobQueue, jobIdFor, RedisConnections, TagsetRegistry, type TakenJob } from '@tagflow/queue';
import { leaseHasJob } from '../dispatch/leases.js';
import { ParkedPolls, type ParkedPoll } from '../dispatch/parked-polls.js';
import { Unavailable, withDeadline } from '../common/errors.js';
import { coveredBy } from '../auth/grants.js';
import { JsonLogger } from '../common/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { ReferenceResolver } from '../engine/reference-resolver.js';
import { LongWaits } from '../long-wait/long-waits.js';
import { LeaseService } from './lease.service.js';

/** How long a poll waits for one Redis fetch before answering 503. */
const REDIS_WAIT_MS = 3000;
/** Tag sets of a poll whose first task's priority is read before taking, and how long that may take. */
const PEEK_MAX = 64;
const PEEK_WAIT_MS = 200;

/** A look at the queues that only orders work: if it fails or takes longer than PEEK_WAIT_MS, `fallback`. */
function orFallback<T>(look: Promise<T>, fallback: T): Promise<T> {
  return withDeadline(look, PEEK_WAIT_MS, () => new Error('slow')).catch(() => fallback);
}

/** Highest head priority first among the first PEEK_MAX (stable: ties keep their order); the rest stay behind. */
function rank(order: string[], heads: ReadonlyMap<string, number>): void {
  if (heads.size === 0) return;
  const of = (t: string) => heads.get(t) ?? -Infinity;
  const first = order.slice(0, PEEK_MAX).sort((a, b) => (of(b) > of(a) ? 1 : of(b) < of(a) ? -1 : 0));
  order.splice(0, first.length, ...first);
}

export interface PollRequest {
  /** Only this namespace's tag sets are looked at. */
  namespace: string;
  tags: string[];
  workerId: string | null;
  waitMs: number;
  maxTasks: number;
  /** The caller's tag grants: only tasks all of whose tags they cover are offered (absent: all). */
  grants?: readonly string[];
  /** Aborts when the client has gone or its key's access ended: the poll stops waiting and is offered nothing more. */
  gone?: AbortSignal;
  /**
   * Asked once the poll has found nothing and is about to park (LONG_WAITS_PER_CREDENTIAL is
   * counted then, not for a poll answered at once): false, it answers at once; it may throw (429).
   */
  mayPark?: () => Promise<boolean>;
}

export interface Leased {
  task: TaskEntity;
  lease: { token: string; expires_at: number };
}

/**
 * How long a queue found holding work counts as still holding it, for a report-and-poll
 * call's poll (parkEarly): under a backlog its queues are asked at most this often, not at
 * every call.
 */
const BUSY_FOR_MS = 100;

/** Idle tag sets destroyed between two looks at the database (sweepIdle). */
const SWEEP_CHUNK = 100;

/**
 * Long-polls. A poll's tags are capabilities: it takes from the queues of its namespace's
 * tag sets whose every tag it names (a tag set's tags include its namespace's tag, which
 * the poll names too, so two namespaces' queues never meet), oldest hinted first (a tag set
 * taken from goes behind the others, so a backlog on one does not starve the rest), and parks in LongWaits until a `ready` announcement (from
 * any replica) names a matching tag set.
 *
 * `hints` remembers which tag sets may have jobs (and since when), so an idle tag set
 * costs nothing per poll. A hint is dropped when its queue is found empty, unless an
 * announcement for it arrived meanwhile (`seq`), so no wake-up is lost.
 *
 * Hand-off without a detour: a parked poll waits in ParkedPolls too, where a change on
 * this replica that makes a task READY leases it to the poll in the change's own
 * transaction (the engine's HandOffPort); the poll answers with it once the change has
 * committed, and the task is never queued in Redis. A replica dying between the commit and
 * the answer leaves a lease nobody holds, which expires like any other.
 */
@Injectable()
export class PollService implements OnApplicationBootstrap {
  private readonly index = new TagsetIndex();
  private readonly handedDirectly: (labels?: Record<string, string>, by?: number) => void;
  private readonly hints = new Map<string, number>();
  private readonly seq = new Map<string, number>();
  private readonly leased: (labels?: Record<string, string>, by?: number) => void;
  private readonly notFinished: (e: unknown) => void;
  private readonly notExtended: (e: unknown) => void;
  private readonly unreadable: (e: unknown) => void;
  private readonly forgotten: (labels?: Record<string, string>, by?: number) => void;
  private readonly startedAt = Date.now();
  /** Tag sets whose queue was found holding work (parkEarly), until when that is taken as still so. */
  private readonly busyUntil = new Map<string, number>();
  /** When work on each tag set was last announced (by any replica). */
  private readonly announced = new Map<string, number>();

  constructor(
    private readonly jobs: JobQueue,
    private readonly redis: RedisConnections,
    private readonly registry: TagsetRegistry,
    private readonly waits: LongWaits,
    private readonly leases: LeaseService,
    private readonly resolver: ReferenceResolver,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    private readonly bus: Bus,
    private readonly parked: ParkedPolls,
    metrics: MetricsService,
  ) {
    this.handedDirectly = metrics.counter(
      'tagflow_tasks_handed_directly_total',
      'Tasks made READY on this replica and leased at once to a poll parked here, without a trip through the queue.',
    );
    metrics.gauge('tagflow_tagsets_known', 'Distinct tag sets (queues) this replica knows.', () => this.index.size);
    this.leased = metrics.counter('tagflow_tasks_leased_total', 'Tasks handed to a worker under a lease.');
    const tell = (where: string, error: string) =>
      this.logger.event('warn', 'poll', 'a Redis job step failed; the reconciler releases or requeues the job', {
        where,
        error,
      });
    this.notFinished = metrics.ignored('poll.job-finish', tell);
    this.notExtended = metrics.ignored('poll.job-extend', tell);
    this.forgotten = metrics.counter(
      'tagflow_tagsets_forgotten_total',
      'Idle tag sets whose queues were closed and removed from Redis.',
    );
    this.unreadable = metrics.ignored('poll.tagset-registry-entry', (where, error) =>
      this.logger.event('error', 'poll', 'a tag set entry in Redis is unreadable; left out', { where, error }),
    );
    bus.onEvent((event) => {
      if (event.type === 'tagsets-forgotten') {
        for (const id of event.tagsets) void this.forgetHere(id);
        return;
      }
      if (event.type === 'resync') {
        // Announcements may have been missed: every known tag set may hold work (and, while
        // the bus is degraded, keeps that hint; see fetch).
        for (const id of this.index.ids()) this.hint(id, 0);
        return;
      }
      if (event.type !== 'ready') return;
      this.index.add(event.tagset, asQueueTags(event.tags));
      this.hint(event.tagset, Date.now());
      this.announced.set(event.tagset, Date.now());
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    // A fresh replica knows every tag set and assumes each may hold work until looked at.
    for (const [id, recorded] of await this.registry.all((id, raw) =>
      this.unreadable(new Error(`tag set ${id}: ${raw.slice(0, 200)}`)),
    )) {
      this.index.add(id, asQueueTags(recorded));
      this.hint(id, 0);
    }
  }

  /**
   * Forgets the tag sets that had no READY or RUNNING task and no use here for `idleMs`:
   * their queues are destroyed in Redis (with the stale jobs of tasks cancelled, skipped or
   * deleted while READY), their registry entries
   * removed, and every replica told to drop them from memory. A tag set comes back with its
   * next task. Without this, each distinct tag set ever seen (a tag per short-lived host)
   * kept its queue objects, index entries and Redis keys for ever. At most `limit` a call.
   * Returns: how many went (at most `limit`).
   */
  async sweepIdle(
    busyTagsets: () => Promise<ReadonlySet<string>>,
    now: number,
    idleMs: number,
    limit = 1000,
  ): Promise<number> {
    const unused = (id: string) =>
      Math.max(this.jobs.lastUsedAt(id) ?? 0, this.announced.get(id) ?? 0, this.startedAt) < now - idleMs;
    const busy = await busyTagsets();
    const idle: string[] = [];
    for (const id of this.index.ids()) {
      if (idle.length >= limit) break;
      if (!busy.has(id) && unused(id)) idle.push(id);
    }
    const forgotten: string[] = [];
    const failures: Error[] = [];
    for (let i = 0; i < idle.length && failures.length === 0; i += SWEEP_CHUNK) {
      // Asked again just before they go: a task of one may have become READY meanwhile (on any replica).
      const busyNow = i === 0 ? busy : await busyTagsets();
      // A chunk's queues go side by side (each a few round trips to Redis; one after the
      // other, 10,000 of them took minutes on a busy machine).
      await Promise.all(
        idle
          .slice(i, i + SWEEP_CHUNK)
          .filter((id) => !busyNow.has(id) && unused(id))
          .map(async (id) => {
            try {
              await this.jobs.forget(id, true);
              await this.registry.unregister(id);
              this.drop(id);
              forgotten.push(id);
            } catch (e) {
              failures.push(e instanceof Error ? e : new Error(String(e)));
            }
          }),
      );
    }
    if (forgotten.length > 0) {
      this.forgotten(undefined, forgotten.length);
      await this.bus.publish([{ type: 'tagsets-forgotten', tagsets: forgotten }]);
    }
    // The ones that went are announced first; the rest are tried again next time.
    if (failures.length > 0) throw failures[0];
    return forgotten.length;
  }

  /** Another replica destroyed this tag set's queue: drop what this replica holds of it. */
  private async forgetHere(id: string): Promise<void> {
    this.registry.forgetLocally(id);
    this.drop(id);
    await this.jobs.forget(id, false);
  }

  private drop(id: string): void {
    this.index.remove(id);
    this.busyUntil.delete(id);
    this.hints.delete(id);
    this.seq.delete(id);
    this.announced.delete(id);
  }

  /** Wakes every parked poll that could take from this tag set (after a resume or reconcile). */
  nudge(tagset: string, tags: readonly string[]): void {
    this.index.add(tagset, tags);
    this.hint(tagset, Date.now());
    this.announced.set(tagset, Date.now());
    this.waits.wakeTags(tags);
  }

  /**
   * A poll. `first`, when given, is work of the same request that comes before it (the reports of
   * a report-and-poll call); the poll may be handed a task it releases (parkEarly). When it
   * fails, a task handed meanwhile is given back (READY again, outside its retry budget) and
   * its error is the poll's.
   */
  async poll(req: PollRequest, first?: () => Promise<void>): Promise<Leased[]> {
    if (this.waits.isClosing || !this.redis.ready) {
      await first?.();
      if (this.waits.isClosing) return []; // no new leases from a replica that is stopping
      throw new Unavailable('Redis, which holds the queues, is unavailable; poll again shortly');
    }
    const handle: { wake?: () => void } = {};
    let delivery: Promise<Leased[]> | null = null;
    const me: ParkedPoll = {
      tags: [...req.tags, namespaceTag(req.namespace)],
      maxTasks: req.maxTasks,
      workerId: req.workerId,
      grants: req.grants,
      gone: req.gone,
      accept: (leased) => {
        if (leased.length > 0) this.handedDirectly(undefined, leased.length);
        delivery = this.deliver(leased);
        handle.wake?.();
      },
    };
    const collect = async (): Promise<Leased[]> => {
      await me.reserved; // a change is leasing tasks for it: its outcome first
      const handed = delivery;
      delivery = null;
      return handed ?? [];
    };
    if (first) {
      const close = await this.parkEarly(req, me);
      try {
        await first();
      } catch (e) {
        me.done = true;
        close();
        await this.giveBack(
          (await collect()).map((h) => h.task),
          'the request that was to receive it failed',
        );
        throw e;
      }
      close();
    }
    // Open to hand-offs only while parked: not while it fetches, so nothing is handed to a poll that has answered.
    const look = async (): Promise<Leased[] | undefined> => {
      this.parked.leave(me);
      if (req.gone?.aborted) return [];
      const handed = await collect();
      if (handed.length > 0) return handed;
      const out = await this.fetch(req);
      if (out.length > 0) return out;
      if (req.mayPark && !(await req.mayPark())) return [];
      this.parked.park(me);
      return undefined;
    };
    const leave = () => {
      this.parked.leave(me);
      handle.wake?.();
    };
    req.gone?.addEventListener('abort', leave, { once: true });
    let taken: Leased[] | undefined;
    try {
      taken = await this.waits.until({ tags: me.tags }, Date.now() + req.waitMs, look, handle);
    } finally {
      me.done = true;
      this.parked.leave(me);
      req.gone?.removeEventListener('abort', leave);
    }
    // Handed to it as its wait ended.
    return [...(taken ?? []), ...(await collect())];
  }

  private async fetch(req: PollRequest): Promise<Leased[]> {
    const out: Leased[] = [];
    const order = this.hinted(req).sort((a, b) => (this.hints.get(a) ?? 0) - (this.hints.get(b) ?? 0));
    // Across tag sets, the one whose first waiting task has the highest priority goes first,
    // and only for its tasks that rank at least as high as the next tag set's first; then
    // the heads are read again. At equal priority the order above holds (a tag set taken from
    // waits behind the others). With one priority everywhere this is one round, as before.
    let heads = await this.peek(order);
    while (order.length > 0 && out.length < req.maxTasks) {
      rank(order, heads);
      const tagset = order[0];
      const best = heads.get(tagset);
      const next = order.length > 1 ? heads.get(order[1]) : undefined;
      let quota = req.maxTasks - out.length;
      if (best !== undefined && next !== undefined) {
        quota = Math.max(1, Math.min(quota, await orFallback(this.jobs.countAtLeast(tagset, next), quota)));
      }
      const taken = await this.takeFrom(tagset, quota, req, out);
      if (taken === 'stop') return out;
      if (taken === 'dry') order.shift();
      else if (out.length < req.maxTasks && heads.size > 0) heads = await this.peek(order);
    }
    return out;
  }

  /** The tag sets the poll may take from that may hold work (all of them while the bus is degraded). */
  private hinted(req: PollRequest): string[] {
    return this.index
      .matching([...req.tags, namespaceTag(req.namespace)])
      .filter(
        (id) =>
          (this.hints.has(id) || this.bus.isDegraded) &&
          (!req.grants || coveredBy(req.grants, clientTags(this.index.tagsOf(id) ?? []))),
      );
  }

  /**
   * Parks a poll that follows reports in the same request while they are applied, when its
   * queues hold nothing it could take: a task a report makes READY is then leased to it in the
   * report's own transaction, never queued (as for any parked poll). Queues that may hold work
   * are asked first (one round trip, before the reports: a report's transaction is often
   * quicker); a task waiting there is older or ranks higher, so the poll then takes from the
   * queues as usual. Answers a function that ends the offer.
   */
  private async parkEarly(req: PollRequest, me: ParkedPoll): Promise<() => void> {
    const hinted = this.hinted(req);
    const now = Date.now();
    if (this.bus.isDegraded || hinted.length > PEEK_MAX || hinted.some((id) => (this.busyUntil.get(id) ?? 0) > now))
      return () => undefined;
    if (hinted.length > 0) {
      const seqBefore = hinted.map((id) => this.seq.get(id) ?? 0);
      // Waiting or delayed (a due retry stays in BullMQ's delayed set until a take moves it).
      const holding = await orFallback(this.jobs.holding(hinted), null);
      if (!holding) return () => undefined;
      // A backlog: the next such polls take from the queues without asking, for a moment.
      for (const id of holding) this.busyUntil.set(id, now + BUSY_FOR_MS);
      if (holding.size > 0) return () => undefined;
      // Found empty with no announcement since: no hint, as when a take finds a queue dry (the
      // next such poll parks at once instead of asking).
      hinted.forEach((id, i) => (this.seq.get(id) ?? 0) === seqBefore[i] && this.hints.delete(id));
    }
    if (req.gone?.aborted) return () => undefined;
    this.parked.park(me);
    return () => this.parked.leave(me);
  }

  /** The head priority of the first PEEK_MAX tag sets; empty when there is nothing to choose or Redis is slow (the order then stays). */
  private async peek(tagsets: readonly string[]): Promise<Map<string, number>> {
    if (tagsets.length < 2 || !this.redis.ready) return new Map();
    return orFallback(this.jobs.headPriorities(tagsets.slice(0, PEEK_MAX)), new Map<string, number>());
  }

  /**
   * Takes up to `quota` tasks of one tag set for the poll (into `out`): 'dry' when its queue
   * ran out, 'taken' when the quota is met, 'stop' when Redis or the database failed.
   */
  private async takeFrom(
    tagset: string,
    quota: number,
    req: PollRequest,
    out: Leased[],
  ): Promise<'dry' | 'taken' | 'stop'> {
    const target = out.length + quota;
    while (out.length < target) {
      const seqBefore = this.seq.get(tagset) ?? 0;
      const want = target - out.length;
      const tokens = Array.from({ length: want }, () => this.leases.newToken());
      if (!this.redis.ready) return 'stop';
      // A Redis that stopped answering: the poll answers 503 instead of hanging. A job
      // fetched after that has no claim; the reconciler releases it (an orphan).
      let jobs: TakenJob[];
      try {
        jobs = await withDeadline(
          this.jobs.take(tagset, tokens),
          REDIS_WAIT_MS,
          () => new Unavailable('Redis, which holds the queues, did not answer in time; poll again shortly'),
        );
      } catch (e) {
        // Tasks this poll already leased (from another tag set, or an earlier round) are the
        // worker's only once it receives them: answer with them rather than fail the poll and
        // leave their leases to expire (a Cluster shard dying mid-poll did exactly that).
        if (out.length === 0) throw e;
        this.logger.event('warn', 'poll', 'a tag set could not be read; answering with the tasks already leased', {
          tasks: out.length,
          error: String(e),
        });
        return 'stop';
      }
      if (jobs.length < want && (this.seq.get(tagset) ?? 0) === seqBefore) this.hints.delete(tagset);
      // Taken from: it goes behind the other tag sets with work, so a backlog on one does not starve the rest.
      else if (jobs.length > 0 && this.hints.has(tagset)) this.hints.set(tagset, Date.now());
      if (jobs.length === 0) return 'dry';
      let claimed: TaskEntity[];
      try {
        claimed = await this.leases.claim(
          jobs.map((j) => ({
            taskId: j.taskId,
            attempt: j.attempt,
            tagsetId: tagset,
            token: j.token,
            workerId: req.workerId,
          })),
        );
      } catch (e) {
        // The database did not answer: give the jobs up. Their tasks are still READY in
        // the database, so the reconciler queues them again.
        this.logger.event('error', 'poll', 'claim failed; the jobs go back', {
          tasks: jobs.map((j) => j.taskId),
          error: String(e),
        });
        await Promise.all(jobs.map((j) => this.jobs.finish(tagset, j.jobId, j.token).catch(this.notFinished)));
        return 'stop';
      }
      // Stale jobs (task moved on, cancelled, deleted, or its workflow is paused): dropped.
      const leased = new Set(claimed.map((t) => t.lease_token));
      const stale = jobs.filter((j) => !leased.has(j.token));
      await Promise.all(stale.map((j) => this.jobs.finish(tagset, j.jobId, j.token).catch(this.notFinished)));
      out.push(...(await this.deliver(claimed)));
      if (jobs.length < want) return 'dry';
    }
    return 'taken';
  }

  /** Leased tasks as their worker receives them (see handOut); resolved inputs kept for the whole poll at once. */
  private async deliver(claimed: readonly TaskEntity[]): Promise<Leased[]> {
    const handed: Leased[] = [];
    const undelivered: TaskEntity[] = [];
    for (const task of claimed) {
      try {
        const one = await this.handOut(task, task.tagset_id);
        if (one) handed.push(one);
      } catch (e) {
        // The database failed while its input was read: the others still go out, and this one
        // is given back (READY again, outside its retry budget) instead of left to expire.
        this.logger.event('warn', 'poll', 'a leased task could not be handed out; giving it back', {
          task_id: task.id,
          error: String(e),
        });
        undelivered.push(task);
      }
    }
    await this.giveBack(undelivered, 'its input could not be read');
    await this.leases.recordResolvedInputs(handed.map((h) => h.task).filter((t) => t.resolved_input !== null));
    return handed;
  }

  /** Leases that will not reach their worker, given back (READY again); if that fails too, they expire. */
  private async giveBack(tasks: readonly TaskEntity[], why: string): Promise<void> {
    if (tasks.length === 0) return;
    await this.leases.handBack(tasks, why).catch((e: unknown) =>
      this.logger.event('error', 'poll', 'could not give back undelivered leases; they expire', {
        tasks: tasks.map((t) => t.id),
        error: String(e),
      }),
    );
  }

  /**
   * A leased task as its worker receives it: input references replaced (that input is
   * then kept with the attempt, for the whole poll at once), the Redis lock set to the
   * task's own lease. A reference with no value fails the task here, naming it: the
   * worker never sees it.
   */
  private async handOut(task: TaskEntity, tagset: string): Promise<Leased | null> {
    try {
      const resolved = await this.resolver.resolve(task);
      if (resolved) task.input = task.resolved_input = resolved;
    } catch (e) {
      if (!(e instanceof ResolutionError)) throw e;
      await this.leases.failUnstarted(task, { code: e.code, message: e.message });
      return null;
    }
    if (task.lease_s !== LIMITS.defaultLeaseSeconds && leaseHasJob(task.lease_token!)) {
      await this.jobs
        .extend(tagset, jobIdFor(task.id, task.attempt), task.lease_token!, task.lease_s * 1000)
        .catch(this.notExtended);
    }
    this.leased();
    return { task, lease: { token: task.lease_token!, expires_at: task.lease_expires_at ?? Date.now() } };
  }

  private hint(tagset: string, since: number): void {
    this.seq.set(tagset, (this.seq.get(tagset) ?? 0) + 1);
    const current = this.hints.get(tagset);
    if (current === undefined || since < current) this.hints.set(tagset, since);
  }
}
