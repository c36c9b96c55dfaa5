import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** Where Redis is: one node, a master found through Sentinel, or a Cluster. */
export type RedisTarget =
  | { mode: 'single'; url: string }
  | {
      mode: 'sentinel';
      sentinels: { host: string; port: number }[];
      name: string;
      username?: string;
      password?: string;
      sentinelPassword?: string;
    }
  | { mode: 'cluster'; nodes: { host: string; port: number }[]; username?: string; password?: string };

export interface QueueConfig {
  target: RedisTarget;
  prefix: string;
  /** Default lock length for fetched jobs; a task's own lease is applied on top. */
  defaultLockMs: number;
}

/** A connection to any of the three: commands route to the right node by themselves. */
export type RedisClient = Redis | Cluster;

/**
 * The connections Tagflow holds: one for commands (shared by every tag set's queue, the
 * registry and the epoch) and one subscribed to the bus. Errors surface through the
 * commands that fail; no Redis error ends the API.
 *
 * Failover: with Sentinel, a connection asks the sentinels for the master whenever it
 * (re)connects, and a command refused with READONLY (the old master was turned into a
 * replica under it) reconnects and is sent again; a Cluster follows MOVED and refreshes its
 * slots by itself. In Cluster mode every key of one tag set shares a hash slot (its queue's
 * name carries a hash tag: `queueName`), and different tag sets spread over the shards.
 */
export class RedisConnections {
  readonly command: RedisClient;
  readonly subscriber: RedisClient;

  constructor(readonly config: QueueConfig) {
    this.command = connect(config.target);
    this.subscriber = connect(config.target);
    this.command.on('error', () => undefined);
    this.subscriber.on('error', () => undefined);
  }

  get clustered(): boolean {
    return this.config.target.mode === 'cluster';
  }

  /** Connects both, or throws naming where (passwords left out) and the reason. */
  async start(): Promise<void> {
    let lastError = '';
    const remember = (e: Error) => (lastError = e.message);
    this.command.on('error', remember);
    try {
      await this.command.connect();
      await this.subscriber.connect();
    } catch (e) {
      const reason = lastError || (e instanceof Error ? e.message : String(e));
      throw new Error(`cannot reach Redis at ${describeTarget(this.config.target)}: ${reason}`);
    } finally {
      this.command.off('error', remember);
    }
  }

  /** Whether the command connection is up now (while it is not, commands would wait in ioredis's queue). */
  get ready(): boolean {
    return this.command.status === 'ready';
  }

  async ping(): Promise<void> {
    await this.command.ping();
  }

  /**
   * Whether Redis takes writes now: a short-lived key written under the prefix (a replica
   * answers READONLY; a Cluster with a slot lost answers CLUSTERDOWN). /health says 503
   * while it does not, rather than ok over a queue that cannot be written.
   */
  async probeWrite(): Promise<void> {
    const now = String(Date.now());
    if (!(this.command instanceof Cluster)) {
      await this.command.set(this.key('health'), now, 'PX', 10_000);
      return;
    }
    // Every shard: one master down leaves the tag sets of its slots unwritable, whatever the others say.
    const cluster = this.command;
    const keys = healthKeysPerMaster(cluster.slots, (n) => this.key(`health{${n}}`));
    if (keys.length === 0) throw new Error('the cluster has told no slots yet');
    await Promise.all(keys.map((key) => cluster.set(key, now, 'PX', 10_000)));
  }

  /** `<prefix>:<name>`: every key Tagflow writes lives under its prefix. */
  key(name: string): string {
    return `${this.config.prefix}:${name}`;
  }

  /**
   * A tag set's BullMQ queue name. In Cluster mode it carries a hash tag, so every key of
   * the queue (`<prefix>:{ts-ID}:...`) lands in one slot, as BullMQ's scripts need.
   */
  queueName(tagset: string): string {
    return this.clustered ? `{ts-${tagset}}` : `ts-${tagset}`;
  }

  async close(): Promise<void> {
    this.subscriber.disconnect();
    await this.command.quit().catch(() => this.command.disconnect());
  }
}

/**
 * One key for each master of a Cluster, in a slot that master holds (by its slot table):
 * `key(n)` for n = 0, 1, ... until every master has one (a handful of tries).
 */
function healthKeysPerMaster(slots: readonly (readonly string[] | undefined)[], key: (n: number) => string): string[] {
  const masters = new Set(slots.map((nodes) => nodes?.[0]).filter((m): m is string => !!m));
  const chosen = new Map<string, string>();
  for (let n = 0; chosen.size < masters.size && n < 100_000; n++) {
    const k = key(n);
    const owner = slots[calculateSlot(k)]?.[0];
    if (owner && !chosen.has(owner)) chosen.set(owner, k);
  }
  return [...chosen.values()];
}

/** A command refused because the node it reached no longer takes writes (a master demoted under a connection). */
function demoted(err: Error): 2 | false {
  return /^READONLY\b/.test(err.message) ? 2 : false;
}

function connect(target: RedisTarget): RedisClient {
  // maxRetriesPerRequest: null is what BullMQ requires for its connections.
  const common: RedisOptions = {
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    lazyConnect: true,
    reconnectOnError: demoted,
  };
  switch (target.mode) {
    case 'single':
      return new Redis(target.url, common);
    case 'sentinel':
      return new Redis({
        ...common,
        sentinels: target.sentinels,
        name: target.name,
        username: target.username,
        password: target.password,
        sentinelPassword: target.sentinelPassword,
        // Ask the sentinels again soon after losing the master.
        sentinelRetryStrategy: (times) => Math.min(100 * times, 1000),
      });
    case 'cluster': {
      const options: ClusterOptions = {
        lazyConnect: true,
        enableOfflineQueue: true,
        redisOptions: {
          maxRetriesPerRequest: null,
          username: target.username,
          password: target.password,
          reconnectOnError: demoted,
        },
        clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
        // A failed master's slots move to its replica: look up the slots again at once.
        retryDelayOnFailover: 200,
        retryDelayOnClusterDown: 300,
        slotsRefreshInterval: 2000,
      };
      return new Cluster(target.nodes, options);
    }
  }
}

/** Where Redis is, for messages: no password. */
export function describeTarget(target: RedisTarget): string {
  switch (target.mode) {
    case 'single':
      return redact(target.url);
    case 'sentinel':
      return `master "${target.name}" of sentinels ${target.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
    case 'cluster':
      return `cluster ${target.nodes.map((s) => `${s.host}:${s.port}`).join(',')}`;
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'REDIS_URL';
  }
}
