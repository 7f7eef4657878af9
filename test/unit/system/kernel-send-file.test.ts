import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendFile } from 'sandboxd-spawn';

const MiB = 1024 * 1024;

interface Pair {
  /** The end sendFile writes to (a server-side socket, as the daemon's). */
  sender: net.Socket;
  /** The end the test reads from. */
  receiver: net.Socket;
  close(): void;
}

/** A connected loopback TCP pair. */
async function tcpPair(): Promise<Pair> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const receiver = net.connect(port, '127.0.0.1');
  receiver.pause();
  const sender = await accepted;
  server.close();
  sender.on('error', () => {});
  receiver.on('error', () => {});
  return { sender, receiver, close: () => (sender.destroy(), receiver.destroy()) };
}

const fdOf = (s: net.Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;
/** What each open descriptor of this process refers to ('socket:[123]', a path, ...). */
function fdTargets(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.push(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed meanwhile (the listing's own descriptor)
    }
  }
  return out;
}
const copiesOf = (target: string): number => fdTargets().filter((t) => t === target).length;

/** Reads `n` bytes (or until the end) from a paused socket. */
function readBytes(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    let have = 0;
    const done = (): void => {
      s.off('data', onData);
      s.pause();
      resolve(Buffer.concat(got));
    };
    const onData = (d: Buffer): void => {
      got.push(d);
      have += d.length;
      if (have >= n) done();
    };
    s.on('data', onData);
    s.once('end', done);
    s.resume();
  });
}

type Done = { error: NodeJS.ErrnoException | undefined; sent: number };

function send(sock: net.Socket, fileFd: number, offset: number, count: number): { done: Promise<Done>; cancel: () => void } {
  let cancel = (): void => {};
  const done = new Promise<Done>((resolve) => {
    cancel = sendFile(fdOf(sock), fileFd, offset, count, (error, sent) => resolve({ error, sent }));
  });
  return { done, cancel };
}

describe('sendFile (the addon)', () => {
  let dir: string;
  let file: string;
  /** Far more than the socket buffers of a stalled loopback pair hold (tcp_rmem may reach 32 MiB). */
  let large: string;
  const LARGE = 128 * MiB;
  const content = Buffer.alloc(9 * MiB + 4321);
  for (let i = 0; i < content.length; i++) content[i] = (i * 31 + (i >> 13)) & 0xff;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'kernel-send-'));
    file = path.join(dir, 'f.bin');
    writeFileSync(file, content);
    large = path.join(dir, 'large.bin');
    writeFileSync(large, Buffer.alloc(LARGE, 0x2a));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sends exactly the bytes from offset to offset + count, past several socket buffers', async () => {
    const pair = await tcpPair();
    const fd = openSync(file, 'r');
    try {
      const count = content.length - 777 - 5;
      const { done } = send(pair.sender, fd, 777, count);
      const got = await readBytes(pair.receiver, count);
      expect(await done).toEqual({ error: undefined, sent: count });
      expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(content.subarray(777, 777 + count)).digest('hex'));
    } finally {
      closeSync(fd);
      pair.close();
    }
  });

  it('needs neither descriptor of the caller once called: it sends from its own copies', async () => {
    const pair = await tcpPair();
    const fd = openSync(file, 'r');
    const { done } = send(pair.sender, fd, 0, 3 * MiB);
    closeSync(fd);
    // A new open takes the number just freed; the transfer must still read the first file.
    const other = path.join(dir, 'other.bin');
    writeFileSync(other, Buffer.alloc(4 * MiB, 0x55));
    const reuse = openSync(other, 'r');
    try {
      const got = await readBytes(pair.receiver, 3 * MiB);
      expect((await done).sent).toBe(3 * MiB);
      expect(got.equals(content.subarray(0, 3 * MiB))).toBe(true);
    } finally {
      closeSync(reuse);
      pair.close();
    }
  });

  it('reports EOF with the bytes sent when the file is shorter than the count', async () => {
    const short = path.join(dir, 'short.bin');
    writeFileSync(short, content.subarray(0, 100_000));
    const pair = await tcpPair();
    const fd = openSync(short, 'r');
    try {
      const { done } = send(pair.sender, fd, 0, 200_000);
      const reading = readBytes(pair.receiver, 200_000);
      const { error, sent } = await done;
      expect(error?.code).toBe('EOF');
      expect(error?.syscall).toBe('sendfile');
      expect(sent).toBe(100_000);
      pair.sender.destroy();
      expect((await reading).equals(content.subarray(0, 100_000))).toBe(true);
    } finally {
      closeSync(fd);
      pair.close();
    }
  });

  it('reports EOF when the file is truncated while the reader is stalled', async () => {
    const shrinking = path.join(dir, 'shrinking.bin');
    writeFileSync(shrinking, Buffer.alloc(LARGE, 1));
    const pair = await tcpPair();
    const fd = openSync(shrinking, 'r');
    try {
      const { done } = send(pair.sender, fd, 0, LARGE);
      // The receiver reads nothing more: the transfer stops at what the socket buffers hold.
      await readBytes(pair.receiver, 64 * 1024);
      truncateSync(shrinking, 64 * 1024);
      pair.receiver.resume();
      const { error, sent } = await done;
      expect(error?.code).toBe('EOF');
      expect(sent).toBeLessThan(LARGE);
    } finally {
      closeSync(fd);
      pair.close();
      rmSync(shrinking);
    }
  });

  it('is cancelled while it waits on a reader that takes nothing, and closes its copies', async () => {
    const pair = await tcpPair();
    const fd = openSync(large, 'r');
    const socket = readlinkSync(`/proc/self/fd/${fdOf(pair.sender)}`);
    try {
      const { done, cancel } = send(pair.sender, fd, 0, LARGE);
      await readBytes(pair.receiver, 1);
      // Its own copies of both are open while it runs.
      expect(copiesOf(socket)).toBe(2);
      expect(copiesOf(large)).toBe(2);
      cancel();
      const { error, sent } = await done;
      expect(error?.code).toBe('ECANCELED');
      expect(sent).toBeGreaterThan(0);
      expect(sent).toBeLessThan(LARGE);
      cancel(); // a second cancel, after the end, does nothing
      await new Promise((r) => setImmediate(r));
      expect(copiesOf(socket)).toBe(1);
      expect(copiesOf(large)).toBe(1);
    } finally {
      closeSync(fd);
      pair.close();
    }
  });

  it('ends with the socket error when the reader goes away', async () => {
    const pair = await tcpPair();
    const fd = openSync(large, 'r');
    try {
      const { done } = send(pair.sender, fd, 0, LARGE);
      await readBytes(pair.receiver, 1);
      pair.receiver.resetAndDestroy();
      const { error } = await done;
      expect(['EPIPE', 'ECONNRESET']).toContain(error?.code);
    } finally {
      closeSync(fd);
      pair.close();
    }
  });

  it('keeps the connection open for its owner after the transfer', async () => {
    const pair = await tcpPair();
    const fd = openSync(file, 'r');
    try {
      const { done } = send(pair.sender, fd, 10, 70_000);
      const got = await readBytes(pair.receiver, 70_000);
      expect((await done).sent).toBe(70_000);
      pair.sender.write('after');
      expect((await readBytes(pair.receiver, 5)).toString()).toBe('after');
      expect(got.equals(content.subarray(10, 70_010))).toBe(true);
    } finally {
      closeSync(fd);
      pair.close();
    }
  });

  it('reports the error of a source sendfile cannot read from (a socket), before any byte', async () => {
    const pair = await tcpPair();
    const pipeServer = net.createServer();
    // A Unix socket as the source: sendfile needs a file it can read at an offset.
    const sockPath = path.join(dir, 's.sock');
    await new Promise<void>((r) => pipeServer.listen(sockPath, r));
    const client = net.connect(sockPath);
    await new Promise((r) => client.once('connect', r));
    try {
      const { error, sent } = await send(pair.sender, fdOf(client), 0, 1000).done;
      expect(error?.code).toBe('ESPIPE');
      expect(sent).toBe(0);
    } finally {
      client.destroy();
      pipeServer.close();
      pair.close();
    }
  });

  it('refuses arguments it cannot use at once', () => {
    const cb = (): void => {};
    expect(() => sendFile(-1, 0, 0, 1, cb)).toThrow(TypeError);
    expect(() => sendFile(1, 0, 0.5, 1, cb)).toThrow(TypeError);
    expect(() => (sendFile as unknown as (...a: unknown[]) => void)(1, 0, 0, 1)).toThrow(TypeError);
    expect(() => sendFile(2_000_000, 0, 0, 1, cb)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });
});
