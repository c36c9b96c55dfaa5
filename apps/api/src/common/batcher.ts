/**
 * Group commit: calls made while a batch is being written wait and are written together
 * in the next one, so a burst of N calls costs a few transactions instead of N. An idle
 * call is written at once, alone (no timer, no added latency).
 *
 * `write` answers each item in order: a value, or an Error for that item alone. When
 * `write` itself throws, every item of the batch fails with that error.
 */
export class Batcher<I, O> {
  private readonly pending: { item: I; resolve: (o: O) => void; reject: (e: unknown) => void }[] = [];
  private writing = false;

  constructor(
    private readonly write: (items: I[]) => Promise<(O | Error)[]>,
    /** The most a batch may weigh (rows, statement parameters); a heavier single item goes alone. */
    private readonly maxWeight: number,
    private readonly weight: (item: I) => number = () => 1,
    /** Items waiting at most; beyond, submit rejects with `onFull()` (the database is slower than the callers). */
    private readonly maxPending = Infinity,
    private readonly onFull: () => Error = () => new Error('the batch queue is full'),
  ) {}

  get waiting(): number {
    return this.pending.length;
  }

  submit(item: I): Promise<O> {
    if (this.pending.length >= this.maxPending) return Promise.reject(this.onFull());
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.pending.length > 0) {
        let load = this.weight(this.pending[0].item);
        let n = 1;
        while (n < this.pending.length && load + this.weight(this.pending[n].item) <= this.maxWeight)
          load += this.weight(this.pending[n++].item);
        const batch = this.pending.splice(0, n);
        try {
          const results = await this.write(batch.map((b) => b.item));
          batch.forEach((b, i) => {
            const r = results[i];
            if (r instanceof Error) b.reject(r);
            else b.resolve(r);
          });
        } catch (e) {
          for (const b of batch) b.reject(e);
        }
      }
    } finally {
      this.writing = false;
    }
  }
}
