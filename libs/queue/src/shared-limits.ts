import { createHash, randomUUID } from 'node:crypto';
import type { RedisConnections } from './redis.js';

/**
 * Limits that hold across every API replica together, kept in Redis: a token bucket per
 * credential (requests a second), counts per credential (requests parked, streams
 * followed) and counts per time window (audit records of refusals). Every key lives under
 * one hash tag (`<prefix>:{limits}:...`), so each script touches one slot of a Cluster.
 *
 * Each replica announces itself in `replicas` (a sorted set scored by when its presence
 * lapses, renewed every PRESENCE_EVERY_MS); a count a replica holds is dropped once its
 * presence has lapsed, so a replica that died gives its share back within PRESENCE_TTL_MS.
 * While Redis cannot be reached, each replica limits on its own to its share of each
 * limit (the limit divided by the replicas it last saw): the caller falls back to local
 * limits when these calls reject.
 */
export const PRESENCE_TTL_MS = 30_000;
/** How long a limit waits for Redis before it decides on this replica's share alone. */
const ANSWER_WITHIN_MS = 500;
export const PRESENCE_EVERY_MS = 10_000;

/**
 * A token bucket in a hash {tokens, at}. Takes: KEYS[1] the bucket; ARGV rate (per s),
 * burst. The clock is the Redis server's, the same for every replica. Returns: 0 when a
 * token was taken, else the ms until one is there.
 */
const TAKE = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]) or burst, tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
`;

/** Gives a token back (up to the burst). Takes: KEYS[1] the bucket; ARGV burst. */
const REFUND = `
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
if tokens then redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tonumber(ARGV[1]), tokens + 1))) end
return 1
`;

/**
 * One more of a credential's counted things, when there is room. Takes: KEYS[1] the
 * credential's counts (replica -> n), KEYS[2] the replicas' presence; ARGV this replica,
 * the most allowed. Counts of replicas whose presence lapsed are dropped first.
 * Returns: 1 when counted, 0 when full.
 */
const ACQUIRE = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local counts = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #counts, 2 do
  local seen = tonumber(redis.call('ZSCORE', KEYS[2], counts[i]))
  if seen == nil or seen < now then redis.call('HDEL', KEYS[1], counts[i]) else total = total + tonumber(counts[i + 1]) end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ${PRESENCE_TTL_MS * 2})
return 1
`;

/** Fewer by a number. Takes: KEYS[1] the counts; ARGV this replica, how many fewer. */
const RELEASE = `
if redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2])) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`;

/**
 * This replica is alive until now + ARGV[2] (by the server's clock). Takes: KEYS[1] the
 * presence set; ARGV this replica, the time to live. Returns: the replicas alive.
 */
const ANNOUNCE = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
`;

/**
 * Holds a duty for this replica: renews it when this replica holds it, takes it when no
 * one does. Takes: KEYS[1] the duty; ARGV this replica, how long (ms). Returns: 1 when held.
 */
const HOLD = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** A count in the current window. Takes: KEYS[1] the counter of the window; ARGV its length (ms). Returns: the count. */
const COUNT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`;

export class SharedLimits {
  /** This replica, as the presence set and the counts know it. */
  readonly replica = randomUUID();
  private timer: NodeJS.Timeout | null = null;
  private replicasSeen = 1;
  /** Counts being given back, by key, in this turn of the event loop (see `release`). */
  private readonly releasing = new Map<
    string,
    { count: number; done: Promise<void>; send: (sent: Promise<unknown>) => void }
  >();

  constructor(private readonly redis: RedisConnections) {}

  /** Announces this replica now and every PRESENCE_EVERY_MS. */
  start(): void {
    void this.announce();
    this.timer = setInterval(() => void this.announce(), PRESENCE_EVERY_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.redis.command.zrem(this.key('replicas'), this.replica).catch(() => undefined);
  }

  /** The replicas alive when last looked (at least 1): the share of a limit each takes while Redis is away. */
  get replicas(): number {
    return this.replicasSeen;
  }

  /** Takes a token of `credential`'s bucket. Returns: 0, or the ms until one is there. Rejects when Redis cannot be reached. */
  async take(credential: string, ratePerS: number, burst: number): Promise<number> {
    return Number(await this.run(TAKE, [this.key(`rate:${credential}`)], [ratePerS, burst]));
  }

  async refund(credential: string, burst: number): Promise<void> {
    await this.run(REFUND, [this.key(`rate:${credential}`)], [burst]);
  }

  /**
   * Counts one more of `what` for `credential` when fewer than `max` are counted on all
   * replicas. Returns: whether it was. When Redis answers after the deadline (the caller
   * has then decided on its own share), a count it took is given back, so none leaks.
   */
  async acquire(what: string, credential: string, max: number): Promise<boolean> {
    const key = this.key(`${what}:${credential}`);
    // Counts this replica is about to give back go first (on the same connection: in order).
    this.releaseNow(key);
    const answer = this.evaluate(ACQUIRE, [key, this.key('replicas')], [this.replica, max]);
    try {
      return Number(await this.withinDeadline(answer)) === 1;
    } catch (e) {
      answer.then(
        (counted) => Number(counted) === 1 && void this.release(what, credential).catch(() => undefined),
        () => undefined,
      );
      throw e;
    }
  }

  /**
   * Gives one count of `what` back. The counts given back for one key in the same turn of
   * the event loop go in one script (1,000 polls answered at once by a burst were 1,000
   * round trips); each caller's promise settles with it. So a count reaches Redis up to one
   * turn of this replica's loop after its request was answered: a poll sent again at once
   * to another replica may find it still counted (this replica's own next `acquire` sends
   * it first).
   */
  release(what: string, credential: string): Promise<void> {
    const key = this.key(`${what}:${credential}`);
    const pending = this.releasing.get(key);
    if (pending) {
      pending.count++;
      return pending.done;
    }
    let send!: (sent: Promise<unknown>) => void;
    const done = new Promise<unknown>((resolve) => (send = resolve)).then(() => undefined);
    this.releasing.set(key, { count: 1, done, send });
    setImmediate(() => this.releaseNow(key));
    return done;
  }

  /** Sends the counts gathered for `key` (see `release`) now, if any. */
  private releaseNow(key: string): void {
    const batch = this.releasing.get(key);
    if (!batch) return;
    this.releasing.delete(key);
    batch.send(this.run(RELEASE, [key], [this.replica, batch.count]));
  }

  /** Counts one more of `what` in the current window of `windowMs`. Returns: the count in it. */
  async count(what: string, windowMs: number): Promise<number> {
    const window = Math.floor(Date.now() / windowMs);
    return Number(await this.run(COUNT, [this.key(`${what}:${window}`)], [windowMs]));
  }

  /**
   * Whether this replica holds `duty` (taking or renewing it for `ttlMs`): periodic work
   * that one replica does for all, so an idle deployment of N replicas puts one replica's
   * load on the database. A replica that stops renewing lets it go after `ttlMs`. While
   * Redis cannot be reached every replica holds it (the duties are safe to run anywhere).
   */
  async holdDuty(duty: string, ttlMs: number): Promise<boolean> {
    try {
      return Number(await this.run(HOLD, [this.key(`duty:${duty}`)], [this.replica, ttlMs])) === 1;
    } catch {
      return true;
    }
  }

  private async announce(): Promise<void> {
    try {
      this.replicasSeen = Math.max(
        1,
        Number(await this.run(ANNOUNCE, [this.key('replicas')], [this.replica, PRESENCE_TTL_MS])),
      );
    } catch {
      // Redis away: the last count stands.
    }
  }

  private key(name: string): string {
    return this.redis.key(`{limits}:${name}`);
  }

  /**
   * Runs a script within ANSWER_WITHIN_MS. Rejects when Redis is not connected or has not
   * answered by then (a frozen Redis must not hold every request: the callers fall back to
   * local limits).
   */
  private run(script: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    return this.withinDeadline(this.evaluate(script, keys, args));
  }

  /** Runs a script by its digest, sending its text only when Redis does not know it yet. */
  private evaluate(script: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    if (!this.redis.ready) return Promise.reject(new Error('Redis is not connected'));
    const sha = digestOf(script);
    return this.redis.command.evalsha(sha, keys.length, ...keys, ...args).catch((e: unknown) => {
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      return this.redis.command.eval(script, keys.length, ...keys, ...args);
    });
  }

  /**
   * `answer`, or a rejection once ANSWER_WITHIN_MS have passed. The rejection waits for the
   * rest of that turn of the event loop (setImmediate runs after pending I/O is read): a
   * process too busy to run its timers on time has often got the answer meanwhile.
   */
  private withinDeadline<T>(answer: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => setImmediate(() => reject(new Error(`Redis did not answer within ${ANSWER_WITHIN_MS} ms`))),
        ANSWER_WITHIN_MS,
      );
    });
    answer.catch(() => undefined); // a late failure after the deadline is nobody's
    return Promise.race([answer, late]).finally(() => clearTimeout(timer));
  }
}

const digests = new Map<string, string>();

/** A script's SHA-1, as EVALSHA names it (computed once a script). */
function digestOf(script: string): string {
  let sha = digests.get(script);
  if (sha === undefined) digests.set(script, (sha = createHash('sha1').update(script).digest('hex')));
  return sha;
}
