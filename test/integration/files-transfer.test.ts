import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileNotFoundError, InvalidArgumentError, NotFoundError, type Sandbox } from 'e2b';
import { signatureFor } from '../../src/auth/signature.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startSdkDaemon } from '../helpers/sdk.js';
import { ensureUser, scratchDir } from './files-support.js';

const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

/** `total` bytes of random data made chunk by chunk, with the digest of what was handed out. */
function generatedStream(total: number, chunk = 1024 * 1024): { stream: ReadableStream<Uint8Array>; digest: () => string } {
  const hash = createHash('sha256');
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      const piece = randomBytes(Math.min(chunk, total - sent));
      hash.update(piece);
      sent += piece.length;
      controller.enqueue(piece);
    },
  });
  return { stream, digest: () => hash.digest('hex') };
}

async function digestOf(stream: ReadableStream<Uint8Array>): Promise<{ hex: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const piece of stream as unknown as AsyncIterable<Uint8Array>) {
    hash.update(piece);
    bytes += piece.length;
  }
  return { hex: hash.digest('hex'), bytes };
}

describe('file transfer through the SDK', () => {
  let daemon: RunningDaemon;
  let sandbox: Sandbox;
  let root: string;
  let account: ReturnType<typeof ensureUser>;

  beforeAll(async () => {
    account = ensureUser();
    root = scratchDir('transfer');
    ({ daemon, sandbox } = await startSdkDaemon());
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('round-trips text and bytes', async () => {
    const text = path.join(root, 'hello.txt');
    const info = await sandbox.files.write(text, 'Hello, wörld!\n');
    expect(info).toMatchObject({ path: text, name: 'hello.txt', type: 'file' });
    expect(await sandbox.files.read(text)).toBe('Hello, wörld!\n');

    const bin = path.join(root, 'blob.bin');
    const bytes = randomBytes(70_000);
    await sandbox.files.write(bin, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    const back = await sandbox.files.read(bin, { format: 'bytes' });
    expect(sha256(back)).toBe(sha256(bytes));
    expect(readFileSync(bin).equals(bytes)).toBe(true);

    const empty = path.join(root, 'empty');
    await sandbox.files.write(empty, '');
    expect(await sandbox.files.read(empty)).toBe('');
    expect((await sandbox.files.read(empty, { format: 'bytes' })).length).toBe(0);
  });

  it('streams 100 MiB up and down with matching checksums', async () => {
    const big = path.join(root, 'big.bin');
    const size = 100 * 1024 * 1024;
    const up = generatedStream(size);
    await sandbox.files.write(big, up.stream);
    expect(statSync(big).size).toBe(size);
    const down = await digestOf(await sandbox.files.read(big, { format: 'stream' }));
    expect(down.bytes).toBe(size);
    expect(down.hex).toBe(up.digest());
    rmSync(big);
  });

  it('writes raw bodies of odd chunkings whole, ending on either side of a gathered write (256 KiB)', async () => {
    const cases = [
      { total: 256 * 1024 - 1, chunk: 7919 },
      { total: 256 * 1024, chunk: 65536 },
      { total: 256 * 1024 + 1, chunk: 100_003 },
      { total: 3 * 1024 * 1024 + 17, chunk: 1 * 1024 * 1024 + 1 },
      { total: 2 * 1024 * 1024 + 5, chunk: 13 },
    ];
    for (const [i, c] of cases.entries()) {
      const p = path.join(root, `odd-${i}.bin`);
      const up = generatedStream(c.total, c.chunk);
      await sandbox.files.write(p, up.stream);
      expect(statSync(p).size, `${c.total} bytes in chunks of ${c.chunk}`).toBe(c.total);
      expect(sha256(readFileSync(p)), `${c.total} bytes in chunks of ${c.chunk}`).toBe(up.digest());
    }
  });

  it('does not hold an upload in memory: 256 MiB through grows the daemon by far less', async () => {
    const pid = daemon.child.pid!;
    const statusMiB = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
    const before = statusMiB('VmRSS');
    writeFileSync(`/proc/${pid}/clear_refs`, '5'); // restart the peak (VmHWM) from here
    const big = path.join(root, 'memory.bin');
    // A fresh connection (agent: false): its first request is where a socket handover can go wrong.
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        `${daemon.url}/files?path=${encodeURIComponent(big)}`,
        { method: 'POST', agent: false, headers: { 'Content-Type': 'application/octet-stream' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      // The same block over and over: the client must outrun the disk for buffering to show.
      const block = randomBytes(1024 * 1024);
      Readable.from((function* () {
        for (let i = 0; i < 256; i++) yield block;
      })()).pipe(req);
    });
    expect(status).toBe(200);
    expect(statusMiB('VmHWM') - before).toBeLessThan(128);
    rmSync(big);
  });

  it('writes several files in one multipart request, creating parents', async () => {
    const files = [
      { path: path.join(root, 'multi/a.txt'), data: 'A' },
      { path: path.join(root, 'multi/deep/er/b.txt'), data: 'BB' },
      { path: path.join(root, 'multi/c.bin'), data: new Uint8Array([0, 1, 2]).buffer },
    ];
    const infos = await sandbox.files.writeFiles(files);
    expect(infos.map((i) => i.path)).toEqual(files.map((f) => f.path));
    expect(readFileSync(files[0]!.path, 'utf8')).toBe('A');
    expect(readFileSync(files[1]!.path, 'utf8')).toBe('BB');
    expect([...readFileSync(files[2]!.path)]).toEqual([0, 1, 2]);
  });

  it('writes a form of many parts (more than are written at once) and answers them in form order', async () => {
    const files = Array.from({ length: 60 }, (_, i) => ({ path: path.join(root, 'many-parts', `d${i % 7}`, `f${i}.txt`), data: `part ${i}\n`.repeat(i + 1) }));
    const infos = await sandbox.files.writeFiles(files);
    expect(infos.map((i) => i.path)).toEqual(files.map((f) => f.path));
    for (const f of files) expect(readFileSync(f.path, 'utf8')).toBe(f.data);
  });

  it('writes a form of small files into new nested directories as the user, each file and parent theirs', async () => {
    mkdirSync(path.join(root, 'small-tree'));
    const files = Array.from({ length: 300 }, (_, i) => ({ path: path.join(root, 'small-tree', `d${i % 5}`, `e${i % 3}`, `f${i}.txt`), data: `small ${i}\n` }));
    const infos = await sandbox.files.writeFiles(files, { user: 'user' });
    expect(infos.map((i) => i.path)).toEqual(files.map((f) => f.path));
    for (const f of files) {
      expect(readFileSync(f.path, 'utf8')).toBe(f.data);
      expect([statSync(f.path).uid, statSync(f.path).gid]).toEqual([account.uid, account.gid]);
    }
    for (const d of ['d0', 'd4/e2']) expect(statSync(path.join(root, 'small-tree', d)).uid).toBe(account.uid);
    for (const d of readdirSync(path.join(root, 'small-tree'))) {
      for (const e of readdirSync(path.join(root, 'small-tree', d))) {
        expect(readdirSync(path.join(root, 'small-tree', d, e)).filter((n) => n.startsWith('.sandboxd-tmp-'))).toEqual([]);
      }
    }
  });

  it('replaces old files from a form of small parts whole: a new inode, the old mode kept, the old metadata cleared', async () => {
    const dir = path.join(root, 'small-old');
    mkdirSync(dir);
    const paths = Array.from({ length: 20 }, (_, i) => path.join(dir, `f${i}.txt`));
    for (const p of paths) writeFileSync(p, 'old');
    chmodSync(paths[5]!, 0o640);
    await sandbox.files.write(paths[7]!, 'tagged', { metadata: { stage: 'old' } });
    const inodes = paths.map((p) => statSync(p).ino);

    await sandbox.files.writeFiles(paths.map((p) => ({ path: p, data: `new ${p}` })));
    for (const [i, p] of paths.entries()) {
      expect(readFileSync(p, 'utf8')).toBe(`new ${p}`);
      expect(statSync(p).ino, p).not.toBe(inodes[i]);
    }
    expect(statSync(paths[5]!).mode & 0o777).toBe(0o640);
    expect((await sandbox.files.getInfo(paths[7]!)).metadata).toBeUndefined();
    expect(readdirSync(dir).filter((n) => n.startsWith('.sandboxd-tmp-'))).toEqual([]);
  });

  it('writes parts on either side of the small-file limit (64 KiB) whole, in a form and as raw bodies', async () => {
    const dir = path.join(root, 'limit');
    const sizes = [0, 1, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 1024 * 1024 + 3];
    const bodies = sizes.map((n) => randomBytes(n));
    const files = bodies.map((b, i) => ({ path: path.join(dir, `s${i}.bin`), data: new Blob([b]) }));
    await sandbox.files.writeFiles([{ path: path.join(dir, 'first.txt'), data: 'first' }, ...files]);
    for (const [i, b] of bodies.entries()) expect(sha256(readFileSync(files[i]!.path)), `${sizes[i]} bytes`).toBe(sha256(b));
    for (const [i, b] of bodies.entries()) {
      await sandbox.files.write(files[i]!.path, new Blob([b.subarray(0, b.length >> 1)]), { useOctetStream: true });
      expect(readFileSync(files[i]!.path).length).toBe(b.length >> 1);
    }
  });

  it('refuses a repeated path late in a form, naming the parts that landed before it', async () => {
    const form = new FormData();
    const paths = Array.from({ length: 12 }, (_, i) => path.join(root, 'late-dup', `f${i}.txt`));
    for (const p of paths) form.append('file', new Blob([p]), p);
    form.append('file', new Blob(['again']), paths[3]!);
    const res = await fetch(`${daemon.url}/files`, { method: 'POST', body: form });
    expect(res.status).toBe(400);
    const { message } = (await res.json()) as { message: string };
    expect(message).toContain(`same path '${paths[3]}'`);
    for (const p of paths) expect(message.includes(p) || p === paths[3]).toBe(true);
    expect(readFileSync(paths[3]!, 'utf8')).toBe(paths[3]);
  });

  it('takes gzip uploads and answers gzip downloads', async () => {
    const p = path.join(root, 'zipped.txt');
    const content = 'compress me '.repeat(1000);
    await sandbox.files.write(p, content, { gzip: true });
    expect(readFileSync(p, 'utf8')).toBe(content);
    expect(await sandbox.files.read(p, { gzip: true })).toBe(content);

    // On the wire: the body really is gzip, and a gzip request body is decoded.
    const res = await fetch(`${daemon.url}/files?path=${encodeURIComponent(p)}`, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(res.headers.get('content-encoding')).toBe('gzip');
    expect(res.headers.get('vary')).toBe('Accept-Encoding');
    expect(await res.text()).toBe(content);
    const raw = await fetch(`${daemon.url}/files?path=${encodeURIComponent(path.join(root, 'raw-gz.txt'))}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Encoding': 'gzip' },
      body: gzipSync('raw gzip body'),
    });
    expect(raw.status).toBe(200);
    expect(readFileSync(path.join(root, 'raw-gz.txt'), 'utf8')).toBe('raw gzip body');
    expect(gunzipSync(gzipSync('x')).toString()).toBe('x');
  });

  it('answers a plain download with length, type, disposition and modification time', async () => {
    const p = path.join(root, 'my report.txt');
    writeFileSync(p, 'twelve bytes');
    const res = await fetch(`${daemon.url}/files?path=${encodeURIComponent(p)}`, { headers: { 'Accept-Encoding': 'identity' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('12');
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(res.headers.get('content-disposition')).toBe('inline; filename="my report.txt"');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(new Date(res.headers.get('last-modified')!).getTime()).toBe(Math.floor(statSync(p).mtimeMs / 1000) * 1000);
    expect(await res.text()).toBe('twelve bytes');
    const head = await fetch(`${daemon.url}/files?path=${encodeURIComponent(p)}`, { method: 'HEAD', headers: { 'Accept-Encoding': 'identity' } });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('12');
    expect(await head.text()).toBe('');
    expect(daemon.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('serves byte ranges and conditional requests as Go ServeContent does', async () => {
    const p = path.join(root, 'ranged.bin');
    writeFileSync(p, '0123456789');
    const url = `${daemon.url}/files?path=${encodeURIComponent(p)}`;
    const part = await fetch(url, { headers: { Range: 'bytes=2-5' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 2-5/10');
    expect(await part.text()).toBe('2345');
    const tail = await fetch(url, { headers: { Range: 'bytes=-3' } });
    expect(await tail.text()).toBe('789');
    const beyond = await fetch(url, { headers: { Range: 'bytes=20-' } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe('bytes */10');
    await beyond.arrayBuffer();
    const lastModified = (await fetch(url)).headers.get('last-modified')!;
    const notModified = await fetch(url, { headers: { 'If-Modified-Since': lastModified } });
    expect(notModified.status).toBe(304);
  });

  it('sets metadata, shows it in getInfo and list, and clears it on a plain overwrite', async () => {
    const dir = path.join(root, 'meta');
    const p = path.join(dir, 'tagged.txt');
    const info = await sandbox.files.write(p, 'content', { metadata: { author: 'mish', purpose: 'upload' } });
    expect(info.metadata).toEqual({ author: 'mish', purpose: 'upload' });
    expect((await sandbox.files.getInfo(p)).metadata).toEqual({ author: 'mish', purpose: 'upload' });
    const listed = await sandbox.files.list(dir);
    expect(listed.find((e) => e.name === 'tagged.txt')?.metadata).toEqual({ author: 'mish', purpose: 'upload' });

    const octet = await sandbox.files.write(p, 'again', { metadata: { stage: 'two' }, useOctetStream: true });
    expect(octet.metadata).toEqual({ stage: 'two' });
    expect((await sandbox.files.getInfo(p)).metadata).toEqual({ stage: 'two' });

    const plain = await sandbox.files.write(p, 'plain');
    expect(plain.metadata).toBeUndefined();
    expect((await sandbox.files.getInfo(p)).metadata).toBeUndefined();
  });

  it('refuses metadata envd refuses with 400 and keeps the file as it was', async () => {
    const p = path.join(root, 'meta-bad.txt');
    writeFileSync(p, 'unchanged');
    const post = (headers: Record<string, string>) =>
      fetch(`${daemon.url}/files?path=${encodeURIComponent(p)}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream', ...headers },
        body: 'changed',
      });
    const long = await post({ [`X-Metadata-${'k'.repeat(247)}`]: 'v' });
    expect(long.status).toBe(400);
    expect(((await long.json()) as { message: string }).message).toMatch(/^invalid metadata: metadata key "k+" exceeds 246 bytes$/);
    const latin1 = await post({ 'X-Metadata-Author': 'Andr\u00e9' });
    expect(latin1.status).toBe(400);
    const huge = await post(Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`X-Metadata-k${i}`, 'v'.repeat(1000)])));
    expect(huge.status).toBe(400);
    expect(readFileSync(p, 'utf8')).toBe('unchanged');
    await expect(sandbox.files.write(p, 'x', { metadata: { 'bad key': 'v' } })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('writes files and missing parents owned by the requesting user', async () => {
    mkdirSync(path.join(root, 'owned'));
    const p = path.join(root, 'owned/new/dir/file.txt');
    await sandbox.files.write(p, 'mine', { user: 'user' });
    for (const q of [p, path.join(root, 'owned/new/dir'), path.join(root, 'owned/new')]) {
      expect([statSync(q).uid, statSync(q).gid], q).toEqual([account.uid, account.gid]);
    }
    expect(statSync(path.join(root, 'owned')).uid).toBe(0);
    expect((await sandbox.files.getInfo(p)).owner).toBe('user');

    const multi = path.join(root, 'owned/multi.txt');
    await sandbox.files.writeFiles([{ path: multi, data: 'm' }], { user: 'user' });
    expect(statSync(multi).uid).toBe(account.uid);
  });

  it('puts relative paths in the user home', async () => {
    const name = `sandboxd-upload-${process.pid}.txt`;
    try {
      const info = await sandbox.files.write(name, 'at home', { user: 'user' });
      expect(info.path).toBe(path.join(account.home, name));
      expect(readFileSync(path.join(account.home, name), 'utf8')).toBe('at home');
      expect(await sandbox.files.read(name, { user: 'user' })).toBe('at home');
      const multi = await sandbox.files.writeFiles([{ path: `sub-${process.pid}/x.txt`, data: 'x' }], { user: 'user' });
      expect(multi[0]!.path).toBe(path.join(account.home, `sub-${process.pid}/x.txt`));
    } finally {
      rmSync(path.join(account.home, name), { force: true });
      rmSync(path.join(account.home, `sub-${process.pid}`), { recursive: true, force: true });
    }
  });

  it('keeps the mode of an overwritten file and writes through a symlink', async () => {
    const script = path.join(root, 'run.sh');
    writeFileSync(script, '#!/bin/sh\n');
    chmodSync(script, 0o750);
    await sandbox.files.write(script, '#!/bin/sh\necho hi\n');
    expect(statSync(script).mode & 0o777).toBe(0o750);

    const target = path.join(root, 'link-target.txt');
    writeFileSync(target, 'old');
    symlinkSync(target, path.join(root, 'via-link'));
    await sandbox.files.write(path.join(root, 'via-link'), 'new');
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(statSync(path.join(root, 'via-link')).isFile()).toBe(true);
  });

  it('maps errors to the SDK classes: missing → not found, directory → invalid argument', async () => {
    await expect(sandbox.files.read(path.join(root, 'missing.txt'))).rejects.toBeInstanceOf(FileNotFoundError);
    await expect(sandbox.files.read(path.join(root, 'missing.txt'))).rejects.toBeInstanceOf(NotFoundError);
    await expect(sandbox.files.read(root)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(sandbox.files.write(root, 'x')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('answers 400 for an octet-stream upload without path and for an unknown content type', async () => {
    const res = await fetch(`${daemon.url}/files`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: 'x' });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ code: 400, message: 'path query parameter is required for raw body upload' });
    const text = await fetch(`${daemon.url}/files?path=/tmp/x`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' });
    expect(text.status).toBe(400);
    // The connection keeps serving afterwards.
    expect((await fetch(`${daemon.url}/health`)).status).toBe(204);
  });

  it('refuses two parts to one path, keeping the first, as envd', async () => {
    const p = path.join(root, 'twice.txt');
    const form = new FormData();
    form.append('file', new Blob(['first']), p);
    form.append('file', new Blob(['second']), p);
    const res = await fetch(`${daemon.url}/files`, { method: 'POST', body: form });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain(`same path '${p}'`);
    expect(readFileSync(p, 'utf8')).toBe('first');
  });

  it('leaves the old content and no temporary file when the client goes away mid-upload', async () => {
    const p = path.join(root, 'precious.txt');
    writeFileSync(p, 'precious');
    const controller = new AbortController();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        sent += 1;
        if (sent === 20) {
          controller.abort();
          return;
        }
        c.enqueue(randomBytes(64 * 1024));
        await new Promise((r) => setTimeout(r, 5));
      },
    });
    await fetch(`${daemon.url}/files?path=${encodeURIComponent(p)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body,
      duplex: 'half',
      signal: controller.signal,
    } as RequestInit).catch(() => undefined);
    const leftovers = async (): Promise<string[]> => {
      for (let i = 0; i < 100; i++) {
        const names = readdirSync(root).filter((n) => n.startsWith('.sandboxd-tmp-'));
        if (names.length === 0) return names;
        await new Promise((r) => setTimeout(r, 50));
      }
      return readdirSync(root).filter((n) => n.startsWith('.sandboxd-tmp-'));
    };
    expect(await leftovers()).toEqual([]);
    expect(readFileSync(p, 'utf8')).toBe('precious');
    expect((await fetch(`${daemon.url}/health`)).status).toBe(204);
  });

  describe('compose', () => {
    const compose = (body: unknown) =>
      fetch(`${daemon.url}/files/compose`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

    it('concatenates sources in order into a new file and removes them', async () => {
      const parts = ['one-', 'two-', 'three'].map((text, i) => {
        const p = path.join(root, `part${i}`);
        writeFileSync(p, text);
        return p;
      });
      const dest = path.join(root, 'composed/whole.txt');
      const res = await compose({ source_paths: parts, destination: dest });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ path: dest, name: 'whole.txt', type: 'file' });
      expect(readFileSync(dest, 'utf8')).toBe('one-two-three');
      for (const p of parts) expect(existsSync(p)).toBe(false);
    });

    it('answers 404 for a missing source and 400 for bad requests, touching nothing', async () => {
      const kept = path.join(root, 'kept-part');
      writeFileSync(kept, 'k');
      const dest = path.join(root, 'never.txt');
      expect((await compose({ source_paths: [kept, path.join(root, 'nope')], destination: dest })).status).toBe(404);
      expect((await compose({ source_paths: [], destination: dest })).status).toBe(400);
      expect((await compose({ source_paths: [kept] })).status).toBe(400);
      expect((await compose({ source_paths: [root], destination: dest })).status).toBe(400);
      expect((await compose({ source_paths: [kept], destination: kept })).status).toBe(400);
      const bad = await fetch(`${daemon.url}/files/compose`, { method: 'POST', body: '{not json' });
      expect(bad.status).toBe(400);
      expect(existsSync(kept)).toBe(true);
      expect(existsSync(dest)).toBe(false);
    });

    it('creates the destination for the named user', async () => {
      const src = path.join(root, 'user-part');
      writeFileSync(src, 'u');
      const dest = path.join(root, 'user-composed/out.txt');
      const res = await compose({ source_paths: [src], destination: dest, username: 'user' });
      expect(res.status).toBe(200);
      expect(statSync(dest).uid).toBe(account.uid);
      expect(statSync(path.dirname(dest)).uid).toBe(account.uid);
    });
  });
});

describe('uploads when an access token is set', () => {
  const token = 'upload-secret';
  let daemon: RunningDaemon;
  let root: string;

  beforeAll(async () => {
    root = scratchDir('signed');
    daemon = await startDaemon({ args: ['--access-token', token] });
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const upload = (query: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${daemon.url}/files?${new URLSearchParams(query)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', ...headers },
      body: 'signed',
    });

  it('takes a write signature or the token, and refuses anything else', async () => {
    const p = path.join(root, 'signed.txt');
    expect((await upload({ path: p })).status).toBe(401);
    expect((await upload({ path: p, signature: signatureFor(p, 'read', '', token) })).status).toBe(401);
    const expired = Math.floor(Date.now() / 1000) - 10;
    expect((await upload({ path: p, signature: signatureFor(p, 'write', '', token, expired), signature_expiration: String(expired) })).status).toBe(401);
    expect(existsSync(p)).toBe(false);

    const signed = await upload({ path: p, signature: signatureFor(p, 'write', '', token) });
    expect(signed.status).toBe(200);
    expect(readFileSync(p, 'utf8')).toBe('signed');
    expect((await upload({ path: p }, { 'X-Access-Token': token })).status).toBe(200);
  });

  it('keeps compose behind the token', async () => {
    const src = path.join(root, 'c-src');
    writeFileSync(src, 'c');
    const compose = (headers: Record<string, string>) =>
      fetch(`${daemon.url}/files/compose`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify({ source_paths: [src], destination: path.join(root, 'c-dest') }),
      });
    expect((await compose({})).status).toBe(401);
    expect((await compose({ 'X-Access-Token': token })).status).toBe(200);
    expect(readFileSync(path.join(root, 'c-dest'), 'utf8')).toBe('c');
  });
});
