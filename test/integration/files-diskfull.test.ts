import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotEnoughSpaceError, type Sandbox } from 'e2b';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startSdkDaemon } from '../helpers/sdk.js';
import { scratchDir } from './files-support.js';

/**
 * The daemon runs in a private mount namespace where `dir` is a 1 MiB tmpfs, so it can fill a
 * disk without touching the host's. Null when this machine does not allow it (no CAP_SYS_ADMIN).
 */
function tinyDiskWrap(dir: string): string[] | null {
  const mount = `mount -t tmpfs -o size=1m tmpfs '${dir}'`;
  try {
    execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${mount} && umount '${dir}'`], { stdio: 'pipe' });
  } catch (err) {
    console.log(`skipping disk-full tests: cannot mount a tmpfs in a private mount namespace (${(err as Error).message.split('\n')[0]})`);
    return null;
  }
  return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `${mount} && exec "$0" "$@"`];
}

describe('a full disk', () => {
  let daemon: RunningDaemon | undefined;
  let sandbox: Sandbox;
  let dir: string;
  let wrap: string[] | null;

  beforeAll(async () => {
    dir = scratchDir('diskfull');
    wrap = tinyDiskWrap(dir);
    if (wrap) ({ daemon, sandbox } = await startSdkDaemon({ wrap }));
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const big = (): Buffer => randomBytes(3 * 1024 * 1024);
  const names = async (): Promise<string[]> => (await sandbox.files.list(dir)).map((e) => e.name).sort();

  it('answers 507 for every upload form and keeps the old content and no temporary file', async (ctx) => {
    if (!wrap) return ctx.skip();
    const p = path.join(dir, 'old.txt');
    await sandbox.files.write(p, 'old content');

    const bytes = big();
    const asStream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 256 * 1024) c.enqueue(bytes.subarray(i, i + 256 * 1024));
        c.close();
      },
    });
    await expect(sandbox.files.write(p, asStream)).rejects.toBeInstanceOf(NotEnoughSpaceError);
    await expect(sandbox.files.writeFiles([{ path: p, data: new Blob([big()]) }])).rejects.toBeInstanceOf(NotEnoughSpaceError);
    await expect(sandbox.files.write(p, new Blob([big()]), { gzip: true })).rejects.toBeInstanceOf(NotEnoughSpaceError);

    expect(await sandbox.files.read(p)).toBe('old content');
    expect(await names()).toEqual(['old.txt']);
  });

  it('answers 507 for a form of small parts that fills the disk, leaving no temporary file', async (ctx) => {
    if (!wrap) return ctx.skip();
    const fill = path.join(dir, 'fill');
    const parts = Array.from({ length: 24 }, (_, i) => ({ path: path.join(fill, `f${i}.bin`), data: new Blob([randomBytes(60 * 1024)]) }));
    await expect(sandbox.files.writeFiles(parts)).rejects.toBeInstanceOf(NotEnoughSpaceError);
    const left = (await sandbox.files.list(fill)).map((e) => e.name);
    expect(left.filter((n) => n.startsWith('.sandboxd-tmp-'))).toEqual([]);
    expect(left.length).toBeGreaterThan(0);
    expect(left.length).toBeLessThan(parts.length);
    await sandbox.files.remove(fill);
    expect(await sandbox.files.read(path.join(dir, 'old.txt'))).toBe('old content');
  });

  it('answers 507 for a form replacing small files on a full disk: each file is whole, old or new, and no temporary file is left', async (ctx) => {
    if (!wrap) return ctx.skip();
    const over = path.join(dir, 'over');
    const count = 24;
    await sandbox.files.writeFiles(Array.from({ length: count }, (_, i) => ({ path: path.join(over, `f${i}.bin`), data: `old ${i}` })));
    // Replacing files (the addon's one-hop write): 24 × 60 KiB do not fit in the 1 MiB disk.
    const fresh = Array.from({ length: count }, () => randomBytes(60 * 1024));
    await expect(sandbox.files.writeFiles(fresh.map((b, i) => ({ path: path.join(over, `f${i}.bin`), data: new Blob([b]) })))).rejects.toBeInstanceOf(
      NotEnoughSpaceError,
    );
    const left = (await sandbox.files.list(over)).map((e) => e.name);
    expect(left.filter((n) => n.startsWith('.sandboxd-tmp-'))).toEqual([]);
    let replaced = 0;
    for (let i = 0; i < count; i++) {
      const now = Buffer.from(await sandbox.files.read(path.join(over, `f${i}.bin`), { format: 'bytes' }));
      if (now.equals(fresh[i]!)) replaced++;
      else expect(now.toString()).toBe(`old ${i}`);
    }
    expect(replaced).toBeGreaterThan(0);
    expect(replaced).toBeLessThan(count);
    await sandbox.files.remove(over);
  });

  it('says how much was attempted, as envd does', async (ctx) => {
    if (!wrap) return ctx.skip();
    const body = big();
    const res = await fetch(`${daemon!.url}/files?path=${encodeURIComponent(path.join(dir, 'raw.bin'))}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body,
    });
    expect(res.status).toBe(507);
    expect(await res.json()).toEqual({ code: 507, message: `attempted to write ${body.length} bytes: not enough disk space available` });
    const gz = await fetch(`${daemon!.url}/files?path=${encodeURIComponent(path.join(dir, 'raw.bin'))}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Encoding': 'gzip' },
      body: gzipSync(body),
    });
    expect(gz.status).toBe(507);
    expect(await names()).toEqual(['old.txt']);
  });

  it('answers 507 for a compose that does not fit and keeps its sources', async (ctx) => {
    if (!wrap) return ctx.skip();
    const parts = [path.join(dir, 'p1'), path.join(dir, 'p2')];
    for (const p of parts) await sandbox.files.write(p, new Blob([randomBytes(300 * 1024)]));
    const res = await fetch(`${daemon!.url}/files/compose`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ source_paths: parts, destination: path.join(dir, 'whole') }),
    });
    expect(res.status).toBe(507);
    expect(await names()).toEqual(['old.txt', 'p1', 'p2']);
    expect((await fetch(`${daemon!.url}/health`)).status).toBe(204);
  });
});
