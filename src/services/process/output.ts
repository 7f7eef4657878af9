/*
 * Output fan-out: one process's output to any number of streams, in bounded memory.
 *
 * Policy:
 * - The *primary* subscriber is the oldest one still attached: the stream that started the process,
 *   or, once that one has gone, the longest-attached Connect stream. It gets backpressure: when its
 *   queue passes `primaryHighWater` the process's output is paused (the child blocks on a full pipe
 *   or pty, exactly as with a slow terminal), and it resumes below `primaryLowWater`. So the stream
 *   that owns the process receives every byte, and the daemon holds at most ~highWater for it.
 * - Every other subscriber (*follower*) gets a bounded queue of `followerLimit` bytes. A follower
 *   that falls further behind is cut off with an error (it can reconnect) instead of slowing the
 *   process or growing the daemon's memory. Followers never pause the process.
 * - With no subscriber at all, output is dropped (the process keeps running), as envd does.
 * Chunks are shared between queues, never copied.
 */

export type OutputKind = 'stdout' | 'stderr' | 'pty';

export interface OutputChunk {
  kind: OutputKind;
  data: Buffer;
}

/** Switches the producer (the child's pipes or pty) on and off. */
export interface FlowControl {
  pause(): void;
  resume(): void;
}

export interface FanoutLimits {
  primaryHighWater: number;
  primaryLowWater: number;
  followerLimit: number;
}

export const DEFAULT_LIMITS: FanoutLimits = {
  primaryHighWater: 1024 * 1024,
  primaryLowWater: 256 * 1024,
  followerLimit: 8 * 1024 * 1024,
};

/** A follower fell more than its limit behind and was cut off. */
export class OutputLagError extends Error {
  constructor(limit: number) {
    super(`output stream fell more than ${limit} bytes behind the process and was cut off; reconnect to follow it again`);
  }
}

export type Delivery<End> =
  | { type: 'data'; chunk: OutputChunk }
  | { type: 'end'; value: End }
  | { type: 'error'; error: Error };

/** One stream's view of the output: a queue it drains at its own pace. */
export class OutputSubscription<End> {
  private queue: OutputChunk[] = [];
  private head = 0;
  /** Bytes queued and not yet taken. */
  bytes = 0;
  private endValue: { value: End } | undefined;
  private error: Error | undefined;
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(private readonly fanout: OutputFanout<End>) {}

  /** The next delivery, or undefined when nothing is ready yet. */
  take(): Delivery<End> | undefined {
    if (this.error) return { type: 'error', error: this.error };
    if (this.head < this.queue.length) {
      const chunk = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as OutputChunk;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.bytes -= chunk.data.length;
      this.fanout.taken(this);
      return { type: 'data', chunk };
    }
    if (this.endValue) return { type: 'end', value: this.endValue.value };
    return undefined;
  }

  /** Resolves when a delivery may be ready, after `ms`, or when `signal` aborts; whichever is first. */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.ready() || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
  }

  /** Detaches from the process; safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.head = 0;
    this.bytes = 0;
    this.fanout.detach(this);
    this.notify();
  }

  private ready(): boolean {
    return this.error !== undefined || this.head < this.queue.length || this.endValue !== undefined || this.closed;
  }

  private notify(): void {
    this.wake?.();
  }

  /** @internal */ push(chunk: OutputChunk): void {
    this.queue.push(chunk);
    this.bytes += chunk.data.length;
    this.notify();
  }

  /** @internal */ end(value: End): void {
    this.endValue = { value };
    this.notify();
  }

  /** @internal */ fail(error: Error): void {
    this.error = error;
    this.queue = [];
    this.head = 0;
    this.bytes = 0;
    this.notify();
  }
}

export class OutputFanout<End> {
  /** Insertion order is attach order: the first entry is the primary. */
  private readonly subs = new Set<OutputSubscription<End>>();
  private paused = false;
  private endValue: { value: End } | undefined;

  constructor(
    private readonly flow: FlowControl,
    readonly limits: FanoutLimits = DEFAULT_LIMITS,
  ) {}

  get subscriberCount(): number {
    return this.subs.size;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  subscribe(): OutputSubscription<End> {
    const sub = new OutputSubscription<End>(this);
    if (this.endValue) sub.end(this.endValue.value);
    else this.subs.add(sub);
    return sub;
  }

  /** New output from the process. */
  push(chunk: OutputChunk): void {
    if (this.endValue || chunk.data.length === 0) return;
    let primary = true;
    for (const sub of this.subs) {
      sub.push(chunk);
      if (!primary && sub.bytes > this.limits.followerLimit) {
        this.subs.delete(sub);
        sub.fail(new OutputLagError(this.limits.followerLimit));
      }
      primary = false;
    }
    this.updateFlow();
  }

  /** The process is done and all its output was pushed: every subscriber gets `value` after its queue. */
  end(value: End): void {
    if (this.endValue) return;
    this.endValue = { value };
    for (const sub of this.subs) sub.end(value);
    this.subs.clear();
    this.setPaused(false);
  }

  /** @internal */ taken(sub: OutputSubscription<End>): void {
    if (this.paused && this.primary() === sub) this.updateFlow();
  }

  /** @internal */ detach(sub: OutputSubscription<End>): void {
    if (this.subs.delete(sub)) this.updateFlow();
  }

  private primary(): OutputSubscription<End> | undefined {
    for (const sub of this.subs) return sub;
    return undefined;
  }

  private updateFlow(): void {
    if (this.endValue) return;
    const backlog = this.primary()?.bytes ?? 0;
    if (!this.paused && backlog >= this.limits.primaryHighWater) this.setPaused(true);
    else if (this.paused && backlog <= this.limits.primaryLowWater) this.setPaused(false);
  }

  private setPaused(paused: boolean): void {
    if (this.paused === paused) return;
    this.paused = paused;
    if (paused) this.flow.pause();
    else this.flow.resume();
  }
}
