import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, createWriteStream, readdirSync, readFileSync, readlinkSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { ensureUser, scratchDir } from './files-support.js';

const MiB = 1024 * 1024;
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** What each open descriptor of `pid` refers to ('socket:[123]', a path, ...). */
function fdTargets(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Sockets the daemon holds more than one descriptor of: the ones a sendfile transfer is writing to. */
function doubledSockets(pid: number): string[] {
  const seen = new Map<string, number>();
  for (const t of fdTargets(pid)) if (t.startsWith('socket:')) seen.set(t, (seen.get(t) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([t]) => t);
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

/** Polls `check` every 20 ms until it holds or `ms` pass; returns whether it held. */
async function eventually(check: () => boolean, ms = 10_000): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (check()) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Whether the whole message arrived (false: the connection ended before Content-Length bytes). */
  complete: boolean;
  localPort: number | undefined;
}

/** GET `url` without gzip; resolves once the response is over, whole or not. */
function get(url: string, opts: { agent?: http.Agent; headers?: Record<string, string>; method?: string } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', agent: opts.agent ?? false, headers: { 'accept-encoding': 'identity', ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('error', () => {});
      res.on('close', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete, localPort: req.socket?.localPort }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** A download whose body the test reads only when told: the client stops reading after the head. */
function stalledGet(url: string): Promise<{ res: http.IncomingMessage; finish: () => Promise<{ digest: string; bytes: number; complete: boolean }> }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { 'accept-encoding': 'identity' } }, (res) => {
      res.pause();
      resolve({
        res,
        finish: () =>
          new Promise((done) => {
            const hash = createHash('sha256');
            let bytes = 0;
            res.on('data', (d: Buffer) => {
              hash.update(d);
              bytes += d.length;
            });
            res.on('error', () => {});
            res.on('close', () => done({ digest: hash.digest('hex'), bytes, complete: res.complete }));
            res.resume();
          }),
      });
    });
    req.on('error', reject);
  });
}

/** A file of `size` pseudo-random bytes (written in 1 MiB pieces), with its digest. */
async function bigFile(file: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  const piece = randomBytes(MiB);
  for (let done = 0; done < size; done += MiB) {
    const part = Buffer.from(piece.subarray(0, Math.min(MiB, size - done)));
    part[0] = done / MiB; // no two pieces alike
    hash.update(part);
    if (!out.write(part)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
  return hash.digest('hex');
}

describe.each([
  { name: 'sendfile', env: {} },
  { name: 'SANDBOXD_SENDFILE=0', env: { SANDBOXD_SENDFILE: '0' } },
])('plain downloads ($name)', ({ name, env }) => {
  const kernel = name === 'sendfile';
  let daemon: RunningDaemon;
  let root: string;
  let pid: number;
  let large: string;
  let largeDigest: string;
  const url = (p: string): string => `${daemon.url}/files?path=${encodeURIComponent(p)}&username=root`;

  beforeAll(async () => {
    root = scratchDir('sendfile');
    daemon = await startDaemon({ env });
    pid = daemon.child.pid!;
    large = path.join(root, 'large.bin');
    // Beyond what a stalled loopback connection buffers (tcp_rmem reaches 32 MiB here).
    largeDigest = await bigFile(large, 192 * MiB);
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('sends files of sizes around its chunk and threshold edges byte for byte', async () => {
    for (const size of [64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, MiB + 1, 2 * MiB - 1, 2 * MiB, 2 * MiB + 1, 5 * MiB + 7]) {
      const p = path.join(root, `f-${size}.bin`);
      const content = randomBytes(size);
      writeFileSync(p, content);
      const got = await get(url(p));
      expect(got.status, `size ${size}`).toBe(200);
      expect(got.headers['content-length']).toBe(String(size));
      expect(got.complete).toBe(true);
      expect(sha256(got.body), `size ${size}`).toBe(sha256(content));
    }
  });

  it('sends a 64 MiB file whole', async () => {
    const p = path.join(root, '64m.bin');
    const digest = await bigFile(p, 64 * MiB);
    const got = await get(url(p));
    expect(got.body.length).toBe(64 * MiB);
    expect(sha256(got.body)).toBe(digest);
  });

  it('sends the bytes of a range, large or small', async () => {
    const p = path.join(root, 'ranged.bin');
    const content = randomBytes(6 * MiB + 5);
    writeFileSync(p, content);
    const cases: [string, number, number][] = [
      ['bytes=100-3000099', 100, 3000099],
      ['bytes=-70000', content.length - 70000, content.length - 1],
      ['bytes=2097151-2097152', 2097151, 2097152],
      ['bytes=5000000-', 5000000, content.length - 1],
    ];
    for (const [range, start, end] of cases) {
      const got = await get(url(p), { headers: { range } });
      expect(got.status, range).toBe(206);
      expect(got.headers['content-range']).toBe(`bytes ${start}-${end}/${content.length}`);
      expect(got.body.equals(content.subarray(start, end + 1)), range).toBe(true);
    }
  });

  it('keeps the connection for the next requests after a large body', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await get(url(large), { agent });
      expect(sha256(first.body)).toBe(largeDigest);
      const p = path.join(root, 'next.bin');
      const content = randomBytes(3 * MiB);
      writeFileSync(p, content);
      const second = await get(url(p), { agent, headers: { range: 'bytes=1-2000000' } });
      const third = await get(url(p), { agent, method: 'HEAD' });
      const fourth = await get(url(p), { agent });
      expect(second.body.equals(content.subarray(1, 2000001))).toBe(true);
      expect(third.headers['content-length']).toBe(String(content.length));
      expect(third.body.length).toBe(0);
      expect(fourth.body.equals(content)).toBe(true);
      // All on one connection.
      expect(new Set([first, second, third, fourth].map((g) => g.localPort)).size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('holds a transfer to a client that stops reading without growing, and serves others meanwhile', async () => {
    const before = rssKiB(pid);
    expect(doubledSockets(pid)).toEqual([]);
    const stalled = await stalledGet(url(large));
    expect(stalled.res.headers['content-length']).toBe(String(192 * MiB));
    // With sendfile the transfer holds its own descriptor of the socket; the buffer path never does.
    if (kernel) expect(await eventually(() => doubledSockets(pid).length === 1)).toBe(true);
    const p = path.join(root, 'meanwhile.bin');
    const content = randomBytes(4 * MiB);
    writeFileSync(p, content);
    const others = await Promise.all([get(url(p)), get(`${daemon.url}/health`), get(url(p), { headers: { range: 'bytes=0-99999' } })]);
    expect(others[0].body.equals(content)).toBe(true);
    expect(others[1].status).toBe(204);
    expect(others[2].body.equals(content.subarray(0, 100000))).toBe(true);
    if (!kernel) expect(doubledSockets(pid)).toEqual([]);
    // The file is not read ahead of the socket: the daemon holds at most a few buffers for it.
    expect(rssKiB(pid) - before).toBeLessThan(48 * 1024);
    const { digest, bytes, complete } = await stalled.finish();
    expect(bytes).toBe(192 * MiB);
    expect(complete).toBe(true);
    expect(digest).toBe(largeDigest);
  });

  it('leaves no descriptor behind when the client goes away mid-transfer', async () => {
    await get(url(large)); // whatever the first transfer opens for good is open now
    expect(await eventually(() => doubledSockets(pid).length === 0)).toBe(true);
    const baseline = fdTargets(pid).length;
    for (let i = 0; i < 3; i++) {
      const stalled = await stalledGet(url(large));
      if (kernel) expect(await eventually(() => doubledSockets(pid).length === 1)).toBe(true);
      stalled.res.socket.destroy();
    }
    expect(await eventually(() => fdTargets(pid).length === baseline)).toBe(true);
    expect(doubledSockets(pid)).toEqual([]);
    const again = await get(url(large));
    expect(sha256(again.body)).toBe(largeDigest);
  });

  it('ends the connection when the file is cut short mid-transfer, never a short answer that looks whole', async () => {
    const p = path.join(root, 'shrinking.bin');
    await bigFile(p, 192 * MiB);
    const stalled = await stalledGet(url(p));
    if (kernel) expect(await eventually(() => doubledSockets(pid).length === 1)).toBe(true);
    truncateSync(p, MiB);
    const { bytes, complete } = await stalled.finish();
    expect(complete).toBe(false);
    expect(bytes).toBeLessThan(192 * MiB);
    expect(await eventually(() => doubledSockets(pid).length === 0)).toBe(true);
    expect((await get(`${daemon.url}/health`)).status).toBe(204);
  });

  it('reads a file only root may read when `user` asks, as the daemon always has', async () => {
    ensureUser();
    const p = path.join(root, 'root-only.bin');
    const content = randomBytes(300_000);
    writeFileSync(p, content);
    chmodSync(p, 0o000);
    const got = await get(`${daemon.url}/files?path=${encodeURIComponent(p)}&username=user`);
    expect(got.status).toBe(200);
    expect(got.body.equals(content)).toBe(true);
  });

  it('sends over HTTP/2 through its buffers', async () => {
    const p = path.join(root, 'h2.bin');
    const content = randomBytes(3 * MiB + 3);
    writeFileSync(p, content);
    const session = http2.connect(daemon.url);
    try {
      const body = await new Promise<Buffer>((resolve, reject) => {
        const stream = session.request({ ':path': `/files?path=${encodeURIComponent(p)}&username=root`, 'accept-encoding': 'identity' });
        const chunks: Buffer[] = [];
        stream.on('data', (d: Buffer) => chunks.push(d));
        stream.on('end', () => resolve(Buffer.concat(chunks)));
        stream.on('error', reject);
      });
      expect(body.equals(content)).toBe(true);
    } finally {
      session.close();
    }
  });

  it('logs no error', () => {
    expect(daemon.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });
});
