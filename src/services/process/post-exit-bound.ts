/**
 * After the child exits its output may stay open while a background child still holds it (`(sleep 2;
 * echo late) & echo early`). As envd, the end comes once that output is drained, so nothing is lost.
 * The bound, so a daemonised child cannot hold the stream forever: the process's deadline (the
 * Start's timeout, as envd), and otherwise POST_EXIT_LIMIT_MS after the exit, counting only time
 * the output was flowing (time paused by a slow client's backpressure does not count).
 */
export const POST_EXIT_LIMIT_MS = 60_000;

/**
 * That bound, for the pipe and the terminal path alike. The process tells it of the exit, of pauses
 * and resumes, and of its deadline; `reached()` answers whether the output may be cut now, and when it
 * may not yet, arms one timer that calls `recheck` once it may.
 */
export class PostExitBound {
  private left: number;
  private since = 0;
  private exited = false;
  private timer: NodeJS.Timeout | undefined;
  private expired = false;
  /** Whether the output is paused (a slow client's backpressure). */
  paused = false;

  constructor(
    limitMs: number,
    private readonly recheck: () => void,
  ) {
    this.left = limitMs;
  }

  /** The child exited: the post-exit time starts counting. */
  exit(): void {
    this.exited = true;
    this.since = Date.now();
  }

  /** False when already paused. */
  pause(): boolean {
    if (this.paused) return false;
    this.paused = true;
    if (this.exited) {
      this.left -= Date.now() - this.since;
      this.clear();
    }
    return true;
  }

  /** False when not paused. */
  resume(): boolean {
    if (!this.paused) return false;
    this.paused = false;
    if (this.exited) this.since = Date.now();
    return true;
  }

  /** The deadline passed: the bound is reached at once, paused or not. */
  expire(): void {
    this.expired = true;
    this.clear();
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Call only after the exit. */
  reached(): boolean {
    if (this.timer || (this.paused && !this.expired)) return false;
    const left = this.expired ? 0 : this.left - (Date.now() - this.since);
    if (left <= 0) return true;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.recheck();
    }, left);
    return false;
  }
}
