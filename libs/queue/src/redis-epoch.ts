import type { RedisConnections } from './redis.js';

/**
 * Notices that Redis lost its data (restarted empty, flushed): a key `<prefix>:epoch`
 * is written once and remembered; when it is gone, or another replica wrote a new one,
 * Redis was reset since this replica last looked.
 */
export class RedisEpoch {
  private epoch: string | null = null;
  private readonly key: string;

  constructor(
    private readonly redis: RedisConnections,
    private readonly onReset: () => void,
  ) {
    this.key = redis.key('epoch');
  }

  /** True when Redis was reset since the last call: the caller must enqueue every READY task again. */
  async wasReset(): Promise<boolean> {
    const { command } = this.redis;
    const current = await command.get(this.key);
    if (current !== null && current === this.epoch) return false;
    if (current === null) {
      await command.set(this.key, `${Date.now()}-${Math.random().toString(36).slice(2)}`, 'NX');
      this.epoch = await command.get(this.key);
      this.onReset();
      return true;
    }
    // Another replica already noticed and wrote a new epoch; our view is stale too.
    const first = this.epoch === null;
    this.epoch = current;
    if (!first) this.onReset();
    return !first;
  }
}
