import { chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureDirs, NotADirectoryError } from '../../../../src/services/filesystem/ensure-dirs.js';

describe('ensureDirs', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'ensure-dirs-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('creates every missing directory with mode 0755 and the given owner', async () => {
    await ensureDirs(path.join(root, 'a/b/c'), 4321, 4322);
    for (const p of ['a', 'a/b', 'a/b/c'].map((d) => path.join(root, d))) {
      const st = statSync(p);
      expect(st.isDirectory()).toBe(true);
      expect(st.mode & 0o777).toBe(0o755 & ~process.umask());
      expect([st.uid, st.gid]).toEqual([4321, 4322]);
    }
  });

  it('leaves directories that already exist with their owner', async () => {
    mkdirSync(path.join(root, 'a'));
    chownSync(path.join(root, 'a'), 1, 1);
    await ensureDirs(path.join(root, 'a/b'), 4321, 4321);
    expect(statSync(path.join(root, 'a')).uid).toBe(1);
    expect(statSync(path.join(root, 'a/b')).uid).toBe(4321);
  });

  it('names the file that stands where a directory should be', async () => {
    writeFileSync(path.join(root, 'f'), '');
    await expect(ensureDirs(path.join(root, 'f/x/y'), 0, 0)).rejects.toThrow(new NotADirectoryError(`path is a file: ${root}/f`));
    await expect(ensureDirs(path.join(root, 'f'), 0, 0)).rejects.toBeInstanceOf(NotADirectoryError);
  });
});
