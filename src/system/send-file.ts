import { read } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { sendFile as KernelSendFile } from 'sandboxd-spawn';
import { spawnAddonExport } from './spawn-addon.js';

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

/** `SANDBOXD_SENDFILE=0` turns sendfile(2) off: every download goes through sendFileRange. */
export const SENDFILE_ENV = 'SANDBOXD_SENDFILE';

/**
 * Bodies shorter than this go through sendFileRange. At 64 KiB + 1, 16 clients at once, sendfile took
 * 340-450 µs of daemon CPU per request against 380-510 on the buffers (README, "Benchmarks against envd").
 */
export const SENDFILE_MIN = 64 * 1024;

let kernel: Promise<typeof KernelSendFile | undefined> | undefined;

/** The addon's sendFile, loaded on first use; undefined when turned off or when the addon cannot load. */
function kernelSendFile(): Promise<typeof KernelSendFile | undefined> {
  kernel ??= process.env[SENDFILE_ENV] === '0' ? Promise.resolve(undefined) : spawnAddonExport('sendFile').catch(() => undefined);
  return kernel;
}

/**
 * The descriptor of a response's own socket when the body may bypass Node: HTTP/1.1 over plain TCP or
 * a Unix socket, attached, not corked. Undefined for HTTP/2 (frames) and TLS (the kernel would send
 * cleartext), and for a response still queued behind a pipelined one.
 */
function plainSocket(res: ServerResponse | Http2ServerResponse): { res: ServerResponse; socket: Socket; fd: number } | undefined {
  if ('stream' in res) return undefined;
  const socket = res.socket;
  if (!socket || socket.destroyed || 'encrypted' in socket || socket.writableCorked > 0) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? { res, socket, fd } : undefined;
}

/**
 * Sends bytes start..end (inclusive) of an open file as the body of `res`, whose head is written
 * (writeHead with a Content-Length) and nothing else: with sendfile(2) on the socket when it can
 * (plainSocket, the addon loaded, SENDFILE_MIN bytes or more), else with sendFileRange. The head
 * leaves Node's buffers before the kernel sends the first body byte; `res.end()` after the last one
 * keeps the connection for its next request. Resolves when the body is sent or the client is gone;
 * rejects when the file could not be read to the end (the response is then destroyed).
 */
export async function sendFileBody(fh: FileHandle, res: ServerResponse | Http2ServerResponse, start: number, end: number): Promise<void> {
  const count = end - start + 1;
  const send = count >= SENDFILE_MIN && plainSocket(res) ? await kernelSendFile() : undefined;
  // Looked at again after the wait: the socket may have gone or changed state meanwhile.
  const target = send && plainSocket(res);
  if (!send || !target) return sendFileRange(fh, res, start, end);
  const { socket, fd } = target;
  target.res.flushHeaders();
  // Nothing left in Node's buffer: libuv wrote the head at once, it is in the kernel. Else an empty
  // write's callback runs once every earlier write (the head) is.
  const flushed = socket.writableLength === 0 || await new Promise<boolean>((resolve) => {
    const onClose = (): void => resolve(false);
    res.once('close', onClose);
    socket.write(EMPTY, (err) => {
      res.off('close', onClose);
      resolve(!err && !socket.destroyed);
    });
  });
  if (!flushed) return;
  const useBuffers = await new Promise<boolean>((resolve, reject) => {
    let gone = false;
    const onClose = (): void => {
      gone = true;
      cancel();
    };
    let cancel = (): void => {};
    const onDone = (err: NodeJS.ErrnoException | undefined, sent: number): void => {
      res.off('close', onClose);
      const outcome = sendFileOutcome(err, sent, gone);
      if (outcome === 'sent') res.end();
      else if (outcome !== 'buffers') res.destroy();
      if (outcome === 'failed') reject(err!.code === 'EOF' ? new Error(`file ended before byte ${end + 1}`) : err);
      else resolve(outcome === 'buffers');
    };
    try {
      cancel = send(fd, fh.fd, start, count, onDone);
    } catch {
      // No descriptor to dup into (EMFILE): the old path still has its buffers to try with.
      resolve(true);
      return;
    }
    res.once('close', onClose);
  });
  if (useBuffers) await sendFileRange(fh, res, start, end);
}

const EMPTY = Buffer.alloc(0);
/** sendfile's errors for a source it cannot read (no splice support, not seekable): the buffers can. */
const UNSUPPORTED = new Set(['EINVAL', 'ENOSYS', 'EOPNOTSUPP', 'ESPIPE']);
/** sendfile's errors for a client that went away (or the call cancelled when the response closed). */
const CLIENT_GONE = new Set(['EPIPE', 'ECONNRESET', 'ECANCELED', 'ENOTCONN', 'ESHUTDOWN', 'ETIMEDOUT']);

/**
 * What a finished sendFile call means: all sent; nothing sent from a file sendfile cannot read (the
 * buffers try it); the client gone (nothing more to send, nothing to report); or the file failed
 * mid-body (it ended early: 'EOF', or a read error such as EIO), which the caller reports; the
 * response is cut then, as a short body must not pass for a whole one.
 */
export function sendFileOutcome(err: NodeJS.ErrnoException | undefined, sent: number, clientGone: boolean): 'sent' | 'buffers' | 'gone' | 'failed' {
  if (!err) return 'sent';
  if (clientGone || CLIENT_GONE.has(err.code ?? '')) return 'gone';
  if (sent === 0 && UNSUPPORTED.has(err.code ?? '')) return 'buffers';
  return 'failed';
}
