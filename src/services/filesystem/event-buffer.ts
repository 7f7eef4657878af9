/**
 * A bounded FIFO of watch events. A stream consumer awaits `next`; a poll consumer takes
 * everything with `drain`. When a consumer falls behind by `capacity` events, the oldest are
 * dropped and counted, so a forgotten watcher cannot grow the daemon without limit.
 */
export class EventBuffer<T> {
  private items: T[] = [];
  private head = 0;
  private waiter: ((woke: boolean) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerMs = 0;
  private hooked: AbortSignal | undefined;
  private failure: Error | undefined;
  /** Events dropped because the buffer was full. */
  dropped = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.size >= this.capacity) {
      this.head++;
      this.dropped++;
      this.compact();
    }
    this.items.push(item);
    this.wake();
  }

  /** Forgets taken or dropped slots once they make up half the array. */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** Ends the buffer with an error: `next` and `drain` throw it once the buffered events are taken. */
  fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  get error(): Error | undefined {
    return this.failure;
  }

  /** Everything buffered, oldest first, leaving the buffer empty. */
  drain(): T[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return out;
  }

  /**
   * The next event; 'idle' when none came within `timeoutMs`, 'aborted' when the signal fired.
   * Throws the failure once the buffer is empty.
   */
  async next(timeoutMs: number, signal: AbortSignal): Promise<T | 'idle' | 'aborted'> {
    for (;;) {
      if (signal.aborted) return 'aborted';
      if (this.size > 0) {
        const item = this.items[this.head++] as T;
        this.compact();
        return item;
      }
      if (this.failure) throw this.failure;
      if (this.hooked !== signal) {
        signal.addEventListener('abort', () => this.settle(true), { once: true });
        this.hooked = signal;
      }
      const woke = await new Promise<boolean>((resolve) => {
        this.waiter = resolve;
        // One timer per buffer, restarted by each wait: no timer and listener made per event.
        if (this.timer && this.timerMs === timeoutMs) this.timer.refresh();
        else {
          clearTimeout(this.timer);
          this.timerMs = timeoutMs;
          this.timer = setTimeout(() => this.settle(false), timeoutMs).unref();
        }
      });
      if (!woke) return 'idle';
    }
  }

  private wake(): void {
    this.settle(true);
  }

  private settle(woke: boolean): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(woke);
  }
}
