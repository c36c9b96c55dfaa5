import type { RedisConnections } from './redis.js';

export type BusEvent =
  | { type: 'ready'; tagset: string; tags: string[]; count: number }
  | { type: 'task-finished'; task: string }
  | { type: 'data-written'; workflow: string; key: string }
  | { type: 'workflow-finished'; workflow: string; state: string }
  | { type: 'tagsets-forgotten'; tagsets: string[] }
  | { type: 'log-appended'; task: string }
  /** A key was revoked: every replica ends what it holds open for that key at once. */
  | { type: 'key-revoked'; key: string };

/** One bus message: the events of one operation, from one replica. */
interface BusMessage {
  origin: string;
  events: readonly BusEvent[];
}

/**
 * One pub/sub channel (`<prefix>:events`) on which every API replica announces ready
 * work, finished tasks and written data, so long waits in any replica wake at once.
 */
export class Bus {
  private readonly listeners: ((event: BusEvent) => void)[] = [];
  private readonly channel: string;
  /** Tells this replica's own messages apart: they were delivered locally already. */
  private readonly origin = `${process.pid}-${Math.random().toString(36).slice(2)}`;

  constructor(private readonly redis: RedisConnections) {
    this.channel = redis.key('events');
  }

  async start(): Promise<void> {
    this.redis.subscriber.on('message', (channel, message) => {
      if (channel !== this.channel) return;
      let envelope: BusMessage;
      try {
        envelope = JSON.parse(message) as BusMessage;
      } catch {
        return;
      }
      if (envelope.origin === this.origin || !Array.isArray(envelope.events)) return;
      this.deliver(envelope.events);
    });
    await this.redis.subscriber.subscribe(this.channel);
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

  /** Tells only this replica's listeners (Redis is away; the others learn from the reconciler and their own waits' deadlines). */
  deliverHere(events: readonly BusEvent[]): void {
    this.deliver(events);
  }

  private deliver(events: readonly BusEvent[]): void {
    for (const event of events) for (const listener of this.listeners) listener(event);
  }
}
