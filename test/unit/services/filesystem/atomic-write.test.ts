import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NATIVE_WRITE_ENV, WriteFailure, writeFileAtomically, type AtomicWriteOptions } from '../../../../src/services/filesystem/atomic-write.js';
import { isDaemonTempName, tempPathFor } from '../../../../src/services/filesystem/replace-hints.js';
import { readMetadata } from '../../../../src/system/xattrs.js';

const opts: AtomicWriteOptions = { uid: 0, gid: 0, metadata: {}, keepMode: true, reportAs: 'upload' };
const text = (s: string): Readable => Readable.from([Buffer.from(s)]);

/** A source that sends some bytes and then fails, as a client that goes away does. */
function failing(): Readable {
  return new Readable({
    read() {
      this.push(Buffer.alloc(64 * 1024, 1));
      setImmediate(() => this.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
    },
  });
}

describe('writeFileAtomically', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'atomic-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the file with its parents, owner and metadata', async () => {
    const p = path.join(dir, 'a/b/c.txt');
    expect(await writeFileAtomically(p, text('hello'), { ...opts, uid: 1234, gid: 1235, metadata: { k: 'v' } })).toBe(p);
    expect(readFileSync(p, 'utf8')).toBe('hello');
    expect([statSync(p).uid, statSync(p).gid]).toEqual([1234, 1235]);
    expect(statSync(path.join(dir, 'a')).uid).toBe(1234);
    expect(await readMetadata(p)).toEqual({ k: 'v' });
  });

  it('keeps the old file and leaves no temporary file when the source fails', async () => {
    const p = path.join(dir, 'keep.txt');
    writeFileSync(p, 'old');
    const err = await writeFileAtomically(p, failing(), opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WriteFailure);
    expect((err as WriteFailure).kind).toBe('source');
    expect(readFileSync(p, 'utf8')).toBe('old');
    expect(readdirSync(dir)).toEqual(['keep.txt']);
  });

  it('refuses a directory and names it', async () => {
    mkdirSync(path.join(dir, 'd'));
    const err = (await writeFileAtomically(path.join(dir, 'd'), text('x'), opts).catch((e: unknown) => e)) as WriteFailure;
    expect(err.kind).toBe('is-directory');
    expect(err.message).toBe(`path is a directory: ${dir}/d`);
  });

  it('keeps the mode of an overwritten file when asked, and writes through symlinks', async () => {
    const p = path.join(dir, 'tool');
    writeFileSync(p, 'v1');
    chmodSync(p, 0o4755);
    await writeFileAtomically(p, text('v2'), opts);
    expect(statSync(p).mode & 0o7777).toBe(0o4755);
    await writeFileAtomically(p, text('v3'), { ...opts, keepMode: false });
    expect(statSync(p).mode & 0o7777).toBe(0o666 & ~process.umask());

    symlinkSync(p, path.join(dir, 'link'));
    expect(await writeFileAtomically(path.join(dir, 'link'), text('via link'), opts)).toBe(p);
    expect(readFileSync(p, 'utf8')).toBe('via link');
    symlinkSync(path.join(dir, 'made-by-link'), path.join(dir, 'dangling'));
    await writeFileAtomically(path.join(dir, 'dangling'), text('new'), opts);
    expect(readFileSync(path.join(dir, 'made-by-link'), 'utf8')).toBe('new');
  });

  it('writes device files in place', async () => {
    expect(await writeFileAtomically('/dev/null', text('discarded'), { ...opts, metadata: { k: 'v' } })).toBe('/dev/null');
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
  });
});

describe.each([
  ['in one hop through the addon', undefined],
  ['with synchronous calls', '0'],
])('writeFileAtomically into a directory the request already found (small files written %s)', (_how, nativeWrite) => {
  let dir: string;
  let known: () => AtomicWriteOptions;
  beforeEach(() => {
    if (nativeWrite) vi.stubEnv(NATIVE_WRITE_ENV, nativeWrite);
    dir = mkdtempSync(path.join(os.tmpdir(), 'atomic-known-'));
    known = () => ({ ...opts, knownDirs: new Set([dir]) });
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A source that sends a few bytes and then fails, before the small-file limit. */
  const failingEarly = (): Readable =>
    new Readable({
      read() {
        this.push(Buffer.from('partial'));
        setImmediate(() => this.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
      },
    });

  it('replaces the file whole, as its owner, keeping set-id bits', async () => {
    const p = path.join(dir, 'tool');
    writeFileSync(p, 'v1');
    chmodSync(p, 0o4755);
    const before = statSync(p).ino;
    await writeFileAtomically(p, text('v2'), { ...known(), uid: 1234, gid: 1235 });
    expect(readFileSync(p, 'utf8')).toBe('v2');
    expect(statSync(p).mode & 0o7777).toBe(0o4755);
    expect([statSync(p).uid, statSync(p).gid]).toEqual([1234, 1235]);
    expect(statSync(p).ino).not.toBe(before);
    expect(readdirSync(dir)).toEqual(['tool']);
  });

  it('keeps the old file and leaves no temporary file when the source fails early or late', async () => {
    const p = path.join(dir, 'keep.txt');
    writeFileSync(p, 'old');
    for (const source of [failingEarly(), failing()]) {
      const err = await writeFileAtomically(p, source, known()).catch((e: unknown) => e);
      expect((err as WriteFailure).kind).toBe('source');
      expect(readFileSync(p, 'utf8')).toBe('old');
      expect(readdirSync(dir)).toEqual(['keep.txt']);
    }
  });

  it('streams a source past the limit, and writes an empty one', async () => {
    const big = Buffer.alloc(64 * 1024 + 1, 7);
    await writeFileAtomically(path.join(dir, 'big'), Readable.from([big.subarray(0, 1000), big.subarray(1000)]), known());
    expect(readFileSync(path.join(dir, 'big')).equals(big)).toBe(true);
    await writeFileAtomically(path.join(dir, 'empty'), Readable.from([]), known());
    expect(readFileSync(path.join(dir, 'empty')).length).toBe(0);
  });

  it('writes through a symlink to the file it names', async () => {
    const target = path.join(dir, 'target');
    writeFileSync(target, 'old');
    symlinkSync(target, path.join(dir, 'link'));
    expect(await writeFileAtomically(path.join(dir, 'link'), text('new'), known())).toBe(target);
    expect(readFileSync(target, 'utf8')).toBe('new');
  });
});

describe('temporary names', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'atomic-temp-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('are fresh each time, beside the target, and known to the watchers', () => {
    const names = Array.from({ length: 1000 }, () => tempPathFor(path.join(dir, 'f')));
    expect(new Set(names).size).toBe(1000);
    for (const n of [...names, tempPathFor(path.join(dir, 'f'), true)]) {
      expect(path.dirname(n)).toBe(dir);
      expect(isDaemonTempName(n)).toBe(true);
    }
  });

  /** The name the next tempPathFor would give: the same random half, the counter one on. */
  const nextName = (): string => {
    const seen = path.basename(tempPathFor(path.join(dir, 'x')));
    return seen.slice(0, -8) + (parseInt(seen.slice(-8), 16) + 1).toString(16).padStart(8, '0');
  };

  it('a name taken first (here a planted symlink) is drawn again: the upload lands, the link is left alone', async () => {
    const victim = path.join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    for (const [name, o, nativeWrite] of [
      ['small', { ...opts, knownDirs: new Set([dir]) }, undefined],
      ['small-sync', { ...opts, knownDirs: new Set([dir]) }, '0'],
      ['streamed', opts, undefined],
    ] as const) {
      vi.stubEnv(NATIVE_WRITE_ENV, nativeWrite);
      const planted = path.join(dir, nextName());
      symlinkSync(victim, planted);
      await writeFileAtomically(path.join(dir, name), text(name), o);
      expect(readFileSync(path.join(dir, name), 'utf8')).toBe(name);
      expect(readFileSync(victim, 'utf8')).toBe('untouched');
      rmSync(planted);
    }
    vi.unstubAllEnvs();
    expect(readdirSync(dir).sort()).toEqual(['small', 'small-sync', 'streamed', 'victim']);
  });
});
