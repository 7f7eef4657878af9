import { writeSync } from 'node:fs';

/** Longest pause between retries while the terminal takes no input (its program does not read). */
const MAX_RETRY_MS = 50;

/**
 * Input into a pty's master, written at once: the master is non-blocking, so a write never waits and
 * a full terminal answers EAGAIN. node-pty's own writer sends every keystroke through fs.write on the
 * thread pool, a hop to a worker thread and back that made up much of a keystroke's echo time on a
 * loaded machine. What the terminal cannot take yet waits here, in order, and is retried (backing off
 * to MAX_RETRY_MS) until it can; `close` (the master was closed) drops it, as nothing can arrive then.
 */
export class PtyWriter {
  private queue: Buffer[] = [];
  private retry: NodeJS.Timeout | undefined;
  private retryMs = 0;
  private closed = false;

  constructor(private readonly fd: number) {}

  write(data: Buffer): void {
    if (this.closed || data.length === 0) return;
    this.queue.push(data);
    if (this.queue.length === 1) this.flush();
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    clearTimeout(this.retry);
  }

  private flush(): void {
    this.retry = undefined;
    while (!this.closed && this.queue.length > 0) {
      const head = this.queue[0]!;
      let written: number;
      try {
        written = writeSync(this.fd, head);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          this.retryMs = Math.min(Math.max(1, this.retryMs * 2), MAX_RETRY_MS);
          this.retry = setTimeout(() => this.flush(), this.retryMs);
        } else {
          // EIO and the like: the terminal is gone, so nothing queued can reach it.
          this.close();
        }
        return;
      }
      this.retryMs = 0;
      if (written < head.length) this.queue[0] = head.subarray(written);
      else this.queue.shift();
    }
  }
}
