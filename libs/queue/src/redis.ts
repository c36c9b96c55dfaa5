import { Redis } from 'ioredis';

export interface QueueConfig {
  redisUrl: string;
  prefix: string;
  /** Default lock length for fetched jobs; a task's own lease is applied on top. */
  defaultLockMs: number;
}

/**
 * The two Redis connections Tagflow holds: one for commands (shared by every tag set's
 * queue, the registry and the epoch) and one subscribed to the bus. Errors surface
 * through the commands that fail; a down Redis must not crash the API.
 */
export class RedisConnections {
  readonly command: Redis;
  readonly subscriber: Redis;

  constructor(readonly config: QueueConfig) {
    // maxRetriesPerRequest: null is what BullMQ requires for its connections.
    const options = { maxRetriesPerRequest: null, enableOfflineQueue: true, lazyConnect: true };
    this.command = new Redis(config.redisUrl, options);
    this.subscriber = new Redis(config.redisUrl, options);
    this.command.on('error', () => undefined);
    this.subscriber.on('error', () => undefined);
  }

  /** Connects both, or throws naming the (redacted) URL and the reason. */
  async start(): Promise<void> {
    let lastError = '';
    const remember = (e: Error) => (lastError = e.message);
    this.command.on('error', remember);
    try {
      await this.command.connect();
      await this.subscriber.connect();
    } catch (e) {
      const reason = lastError || (e instanceof Error ? e.message : String(e));
      throw new Error(`cannot reach Redis at ${redact(this.config.redisUrl)}: ${reason}`);
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

  /** `<prefix>:<name>`: every key Tagflow writes lives under its prefix. */
  key(name: string): string {
    return `${this.config.prefix}:${name}`;
  }

  async close(): Promise<void> {
    this.subscriber.disconnect();
    await this.command.quit().catch(() => this.command.disconnect());
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
