import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sendFileOutcome, sendFileRange } from '../../../src/system/send-file.js';

const MiB = 1024 * 1024;

/** A sink that copies what it is given (the buffers are reused) and takes each chunk only when told. */
function slowSink(): { sink: Writable; received: () => Buffer; pending: () => number; takeAll: () => void } {
  const got: Buffer[] = [];
  const waiting: (() => void)[] = [];
  const sink = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _enc, cb) {
      got.push(Buffer.from(chunk));
      waiting.push(cb);
    },
  });
  return {
    sink,
    received: () => Buffer.concat(got),
    pending: () => waiting.length,
    takeAll: () => waiting.splice(0).forEach((cb) => cb()),
  };
}

describe('sendFileRange', () => {
  let dir: string;
  let file: string;
  const content = Buffer.alloc(5 * MiB + 123);
  for (let i = 0; i < content.length; i++) content[i] = (i * 7 + (i >> 12)) & 0xff;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'send-file-'));
    file = path.join(dir, 'f.bin');
    writeFileSync(file, content);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('sends the bytes asked for, in order, though each buffer is read into again', async () => {
    const fh = await open(file, 'r');
    const { sink, received, takeAll } = slowSink();
    const timer = setInterval(takeAll, 1);
    try {
      await sendFileRange(fh, sink, 100, 4 * MiB + 99);
      await new Promise((r) => sink.end(r));
    } finally {
      clearInterval(timer);
      await fh.close();
    }
    expect(received().equals(content.subarray(100, 4 * MiB + 100))).toBe(true);
  });

  it('reads no further ahead than its few buffers while the sink takes nothing', async () => {
    const fh = await open(file, 'r');
    const { sink, pending, takeAll } = slowSink();
    const sending = sendFileRange(fh, sink, 0, content.length - 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(pending()).toBeLessThanOrEqual(3);
    const timer = setInterval(takeAll, 1);
    await sending;
    clearInterval(timer);
    await fh.close();
  });

  it('stops, without reading on, when the sink goes away', async () => {
    const fh = await open(file, 'r');
    const { sink, pending } = slowSink();
    const sending = sendFileRange(fh, sink, 0, content.length - 1);
    await new Promise((r) => setTimeout(r, 50));
    sink.destroy();
    await sending;
    expect(pending()).toBeLessThanOrEqual(3);
    await fh.close();
  });

  it('destroys the sink rather than end it short when the file shrank under it', async () => {
    const fh = await open(file, 'r');
    truncateSync(file, MiB);
    const { sink, takeAll } = slowSink();
    const timer = setInterval(takeAll, 1);
    await expect(sendFileRange(fh, sink, 0, content.length - 1)).rejects.toThrow(/file ended at byte 1048576/);
    clearInterval(timer);
    expect(sink.destroyed).toBe(true);
    expect(sink.writableFinished).toBe(false);
    await fh.close();
  });
});

describe('sendFileOutcome', () => {
  const err = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

  it('tells a finished call, a file for the buffers, a client gone and a failed file apart', () => {
    expect(sendFileOutcome(undefined, 1 << 20, false)).toBe('sent');
    for (const code of ['EINVAL', 'ENOSYS', 'EOPNOTSUPP', 'ESPIPE']) expect(sendFileOutcome(err(code), 0, false)).toBe('buffers');
    for (const code of ['EPIPE', 'ECONNRESET', 'ECANCELED']) expect(sendFileOutcome(err(code), 4096, false)).toBe('gone');
    // Whatever the error, once the response closed there is no one to tell.
    expect(sendFileOutcome(err('EIO'), 4096, true)).toBe('gone');
    // A file that ends early or cannot be read mid-body is reported, never passed off as a client gone.
    expect(sendFileOutcome(err('EOF'), 4096, false)).toBe('failed');
    expect(sendFileOutcome(err('EIO'), 4096, false)).toBe('failed');
    expect(sendFileOutcome(err('EIO'), 0, false)).toBe('failed');
    // Bytes already sent: the buffers cannot take over without repeating them.
    expect(sendFileOutcome(err('EINVAL'), 4096, false)).toBe('failed');
  });
});
