import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeSmallFile } from 'sandboxd-spawn';

/** writeSmallFile as a promise of its error (undefined on success). */
const write = (tmp: string, dest: string, chunks: Buffer[], o: { uid?: number; gid?: number; mode?: number; createMode?: number } = {}) =>
  new Promise<NodeJS.ErrnoException | undefined>((resolve) => writeSmallFile(tmp, dest, o.uid ?? 0, o.gid ?? 0, o.mode ?? -1, o.createMode ?? 0o666, chunks, resolve));

describe('the addon’s writeSmallFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'write-small-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('lands the chunks over the old file as a new inode, owned and moded as asked', async () => {
    const dest = path.join(dir, 'f');
    writeFileSync(dest, 'old');
    const before = statSync(dest).ino;
    expect(await write(path.join(dir, '.t1'), dest, [Buffer.from('he'), Buffer.alloc(0), Buffer.from('llo')], { uid: 1234, gid: 1235, mode: 0o4750 })).toBeUndefined();
    const st = statSync(dest);
    expect(readFileSync(dest, 'utf8')).toBe('hello');
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1234, 1235, 0o4750]);
    expect(st.ino).not.toBe(before);
    expect(await write(path.join(dir, '.t2'), path.join(dir, 'empty'), [], { createMode: 0o600 })).toBeUndefined();
    expect(statSync(path.join(dir, 'empty')).size).toBe(0);
    expect(statSync(path.join(dir, 'empty')).mode & 0o777).toBe(0o600 & ~process.umask());
    expect(readdirSync(dir).sort()).toEqual(['empty', 'f']);
  });

  it('names the failed step and leaves no temporary file', async () => {
    writeFileSync(path.join(dir, 'taken'), 'mine');
    const taken = await write(path.join(dir, 'taken'), path.join(dir, 'x'), [Buffer.from('a')]);
    expect([taken?.code, taken?.syscall, taken?.path]).toEqual(['EEXIST', 'open', path.join(dir, 'taken')]);
    expect(readFileSync(path.join(dir, 'taken'), 'utf8')).toBe('mine');

    const noDir = await write(path.join(dir, 'gone', '.t'), path.join(dir, 'x'), [Buffer.from('a')]);
    expect([noDir?.code, noDir?.syscall, noDir?.errno]).toEqual(['ENOENT', 'open', -2]);
    expect(noDir?.message).toMatch(/^ENOENT: no such file or directory, open '/);

    const noTarget = await write(path.join(dir, '.t'), path.join(dir, 'gone', 'x'), [Buffer.from('a')]);
    expect([noTarget?.code, noTarget?.syscall]).toEqual(['ENOENT', 'rename']);
    expect(existsSync(path.join(dir, '.t'))).toBe(false);
    expect(readdirSync(dir)).toEqual(['taken']);
  });

  it('refuses bad arguments at once', () => {
    const ok = (): void => undefined;
    expect(() => writeSmallFile(path.join(dir, 'a\0b'), path.join(dir, 'x'), 0, 0, -1, 0o666, [], ok)).toThrow(TypeError);
    expect(() => writeSmallFile(path.join(dir, 't'), path.join(dir, 'x'), -1, 0, -1, 0o666, [], ok)).toThrow(TypeError);
    expect(() => writeSmallFile(path.join(dir, 't'), path.join(dir, 'x'), 0, 0, 0o10000, 0o666, [], ok)).toThrow(TypeError);
    expect(() => writeSmallFile(path.join(dir, 't'), path.join(dir, 'x'), 0, 0, -1, 0o666, ['text' as unknown as Buffer], ok)).toThrow(TypeError);
    expect(() => writeSmallFile(path.join(dir, 't'), path.join(dir, 'x'), 0, 0, -1, 0o666, [Buffer.alloc(1024 * 1024 + 1)], ok)).toThrow(TypeError);
    expect(readdirSync(dir)).toEqual([]);
  });
});
