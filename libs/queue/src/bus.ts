import type { RedisConnections } from './redis.js';

export type BusEvent =
  | { type: 'ready'; tagset: string; tags: string[]; count: number }
  | { type: 'task-finished'; task: string }
  | { type: 'data-written'; workflow: string; key: string }
  | { type: 'workflow-finished'; workflow: string; state: string }
  | { type: 'tagsets-forgotten'; tagsets: string[] }
  | { type: 'log-appended'; task: string }
  /** A key was revoked: every replica ends what it holds open for that key at once. */
  | { type: 'key-revoked'; key: string }
  /**
   * This replica's own, never sent: announcements may have been missed (the subscription
   * dropped, or went quiet), or it is whole again. While `degraded`, waits cannot count on
   * being woken: every one of them looks again now, and polls look at every queue they fit.
   */
  | { type: 'resync'; degraded: boolean };

/** One bus message: the events of one operation, from one replica. */
interface BusMessage {
  origin: string;
  events: readonly BusEvent[];
}

/** How often a replica sends itself an echo over the channel, and how long without one the subscription counts as lost. */
const ECHO_EVERY_MS = 1000;
const ECHO_LOST_AFTER_MS = 3000;

/**
 * One pub/sub channel (`<prefix>:events`) on which every API replica announces ready
 * work, finished tasks and written data, so long waits in any replica wake at once.
 *
 * A subscription can drop (a failover, a network cut) or go quiet without notice (a
 * re-subscription refused). Each replica sends itself an echo every ECHO_EVERY_MS; when
 * none came back for ECHO_LOST_AFTER_MS, or the subscriber's connection closed, the bus
 * tells its listeners it is degraded (`resync`), reconnects the subscriber, and tells them
 * again once an echo comes back. The listeners never wait on a missed announcement for
 * longer than their own re-check.
 */
export class Bus {
  private readonly listeners: ((event: BusEvent) => void)[] = [];
  private readonly channel: string;
  /** Tells this replica's own messages apart: they were delivered locally already. */
  private readonly origin = `${process.pid}-${Math.random().toString(36).slice(2)}`;
  private lastEcho = Date.now();
  private degraded = false;
  private echoTimer: NodeJS.Timeout | null = null;

  constructor(private readonly redis: RedisConnections) {
    this.channel = redis.key('events');
  }

  /** Whether announcements may be missed now (see the class comment). */
  get isDegraded(): boolean {
    return this.degraded;
  }

  async start(): Promise<void> {
    this.redis.subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      let envelope: BusMessage;
      try {
        envelope = JSON.parse(message) as BusMessage;
      } catch {
        return;
      }
      if (!Array.isArray(envelope.events)) return;
      if (envelope.origin === this.origin) {
        // Only the echo comes back here: the rest was delivered locally already.
        if (envelope.events.length === 0) this.echoed();
        return;
      }
      this.deliver(envelope.events);
    });
    // A closed subscriber missed what was sent meanwhile, whatever happens next.
    this.redis.subscriber.on('close', () => this.setDegraded(true));
    await this.redis.subscriber.subscribe(this.channel);
    this.echoTimer = setInterval(() => this.echo(), ECHO_EVERY_MS);
    this.echoTimer.unref();
  }

  stop(): void {
    if (this.echoTimer) clearInterval(this.echoTimer);
    this.echoTimer = null;
  }

  onEvent(listener: (event: BusEvent) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Announces events to every replica in one message: this replica's listeners are
   * called at once (no round trip through Redis), the others' when the message arrives.
   */
  async publish(events: readonly BusEvent[]): Promise<void> {
    if (events.length === 0) return;
    this.deliver(events);
    const message: BusMessage = { origin: this.origin, events };
    await this.redis.command.publish(this.channel, JSON.stringify(message));
  }

  /** Tells only this replica's listeners (Redis is away; the others learn from the reconciler and their own waits' re-checks). */
  deliverHere(events: readonly BusEvent[]): void {
    this.deliver(events);
  }

  private echo(): void {
    const silentMs = Date.now() - this.lastEcho;
    if (silentMs > ECHO_LOST_AFTER_MS) {
      this.setDegraded(true);
      // Subscribed in name only (a re-subscription refused): subscribe again; a connection
      // that stays quiet after that is replaced (ioredis subscribes again on reconnect).
      if (silentMs > 3 * ECHO_LOST_AFTER_MS) {
        this.lastEcho = Date.now() - ECHO_LOST_AFTER_MS;
        this.redis.subscriber.disconnect(true);
      } else if (this.redis.subscriber.status === 'ready') {
        this.redis.subscriber.subscribe(this.channel).catch(() => undefined);
      }
    }
    if (!this.redis.ready) return;
    const echo: BusMessage = { origin: this.origin, events: [] };
    this.redis.command.publish(this.channel, JSON.stringify(echo)).catch(() => undefined);
  }

  private echoed(): void {
    this.lastEcho = Date.now();
    this.setDegraded(false);
  }

  private setDegraded(degraded: boolean): void {
    if (this.degraded === degraded) return;
    this.degraded = degraded;
    this.deliver([{ type: 'resync', degraded }]);
  }

  private deliver(events: readonly BusEvent[]): void {
    for (const event of events) for (const listener of this.listeners) listener(event);
  }
}
