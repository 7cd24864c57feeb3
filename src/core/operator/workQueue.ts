/**
 * A work queue of object keys, as controllers use: a key is queued once however often it is added, is
 * never handled by two workers at once (added while in hand, it runs again after), and failures come back
 * after a per-key exponential backoff that a success resets.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly inHand = new Set<string>();
  private readonly again = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private waiting: (() => void)[] = [];
  private closed = false;

  constructor(private readonly backoff: { baseMs: number; maxMs: number } = { baseMs: 1000, maxMs: 300_000 }) {}

  get length(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.closed) return;
    const timer = this.timers.get(key);
    if (timer) {
      clearTimeout(timer);
      this.timers.delete(key);
    }
    if (this.inHand.has(key)) {
      this.again.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.waiting.shift()?.();
  }

  /** Adds the key after `ms`, unless it is added sooner. */
  addAfter(key: string, ms: number): void {
    if (this.closed || this.timers.has(key)) return;
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref?.();
    this.timers.set(key, timer);
  }

  /** After a failure: back after base × 2^(failures−1), at most max; returns the delay. */
  retryLater(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const ms = Math.min(this.backoff.baseMs * 2 ** (n - 1), this.backoff.maxMs);
    this.addAfter(key, ms);
    return ms;
  }

  /** After a success: the key's backoff starts again from the base. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to handle (waits for one); undefined once the queue is shut down. */
  async take(): Promise<string | undefined> {
    while (!this.queue.length) {
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    const key = this.queue.shift()!;
    this.queued.delete(key);
    this.inHand.add(key);
    return key;
  }

  /** Hands the key back: if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.inHand.delete(key);
    if (this.again.delete(key)) this.add(key);
  }

  shutDown(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const w of this.waiting.splice(0)) w();
  }
}
