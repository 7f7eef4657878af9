import { read } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';

/** Bytes per read(2) and write: few syscalls and callbacks per MiB. */
const CHUNK = 1024 * 1024;
/** Chunks in flight per transfer (being read, or written and not yet taken by the socket). */
const IN_FLIGHT = 3;

/**
 * Sends bytes start..end (inclusive) of an open file to `sink` through a few buffers reused for the
 * whole transfer: a buffer is read into again once the sink's write callback says it was taken (the
 * Writable contract). A read stream allocates a fresh buffer per chunk instead; at disk-cache speed
 * that allocation and the garbage collection it drives cost more CPU than both copies (profile in
 * README, "Benchmarks against envd"). The sink's pace bounds what is in flight (IN_FLIGHT × CHUNK).
 * Resolves when the sink has taken the last byte or is gone; rejects when the file cannot be read
 * (the sink is then destroyed: a short body must not pass for a whole one).
 */
export function sendFileRange(fh: FileHandle, sink: Writable, start: number, end: number): Promise<void> {
  const total = end - start + 1;
  const size = Math.min(CHUNK, Math.max(total, 1));
  const free: Buffer[] = [];
  let buffers = 0;
  let waiting: ((b: Buffer | undefined) => void) | undefined;
  let gone = false;
  const onClose = (): void => {
    gone = true;
    waiting?.(undefined);
  };
  sink.once('close', onClose);
  const release = (b: Buffer): void => {
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(b);
    } else {
      free.push(b);
    }
  };
  const take = (): Buffer | Promise<Buffer | undefined> => {
    const b = free.pop();
    if (b) return b;
    if (buffers < IN_FLIGHT) {
      buffers++;
      return Buffer.allocUnsafe(size);
    }
    return new Promise((resolve) => (waiting = resolve));
  };
  const readAt = (buf: Buffer, length: number, position: number): Promise<number> =>
    new Promise((resolve, reject) => read(fh.fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));

  return (async () => {
    let pos = start;
    try {
      while (pos <= end && !gone) {
        const buf = await take();
        if (!buf || gone) break;
        const n = await readAt(buf, Math.min(size, end - pos + 1), pos);
        if (gone) break;
        if (n === 0) throw new Error(`file ended at byte ${pos} of ${end + 1}`);
        pos += n;
        sink.write(n === buf.length ? buf : buf.subarray(0, n), () => release(buf));
      }
      if (!gone) sink.end();
    } catch (err) {
      // Without the error: the sink may have no 'error' listener; the caller gets the error instead.
      sink.destroy();
      throw err;
    } finally {
      sink.off('close', onClose);
    }
  })();
}
