import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { removeAll } from '../../../src/system/remove-all.js';

/** `levels` nested directories made with relative mkdir, each with a file and a symlink to `outside`. */
function deepTree(root: string, levels: number, outside: string): number {
  const name = 'n'.repeat(100);
  const script = `mkdir -p "$1" && cd "$1" && i=0; while [ $i -lt ${levels} ]; do mkdir ${name} && echo x > f && ln -s "$2" out && cd ${name} || exit 1; i=$((i+1)); done; pwd | wc -c`;
  return Number(execFileSync('/bin/bash', ['-c', script, 'bash', root, outside]).toString().trim());
}

describe('removeAll', () => {
  it('removes a tree deeper than PATH_MAX and leaves what its symlinks point to', async () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-rmall-'));
    const outside = path.join(base, 'keep');
    writeFileSync(outside, 'kept');
    const root = path.join(base, 'tree');
    expect(deepTree(root, 60, outside)).toBeGreaterThan(4096);
    await removeAll(root);
    expect(existsSync(root)).toBe(false);
    expect(readFileSync(outside, 'utf8')).toBe('kept');
  });

  it('is fine with a path that is already gone, and removes a single file', async () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-rmall-'));
    await removeAll(path.join(base, 'missing'));
    writeFileSync(path.join(base, 'file'), '');
    await removeAll(path.join(base, 'file'));
    expect(existsSync(path.join(base, 'file'))).toBe(false);
  });
});
