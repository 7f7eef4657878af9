import { mkdirSync, mkdtempSync, realpathSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Workspace, WorkspaceError } from '../../../src/picod/workspace.js';

describe('Workspace', () => {
  const base = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'picod-unit-')));
  const ws = new Workspace(path.join(base, 'ws'));
  mkdirSync(path.join(ws.root, 'sub'));
  symlinkSync('/etc', path.join(ws.root, 'out'));
  symlinkSync('sub', path.join(ws.root, 'in'));

  it('creates a missing workspace', () => {
    expect(ws.root).toBe(path.join(base, 'ws'));
  });
  it('takes relative and absolute paths inside it', async () => {
    expect(await ws.resolve('a/b.txt')).toBe(path.join(ws.root, 'a/b.txt'));
    expect(await ws.resolve('/a/b.txt')).toBe(path.join(ws.root, 'a/b.txt'));
    expect(await ws.resolve('/../a')).toBe(path.join(ws.root, 'a'));
    expect(await ws.resolve('')).toBe(ws.root);
    expect(await ws.resolve('sub/../x')).toBe(path.join(ws.root, 'x'));
  });
  it('refuses .. out of it', async () => {
    await expect(ws.resolve('..')).rejects.toThrow(WorkspaceError);
    await expect(ws.resolve('a/../../b')).rejects.toThrow('relative path traversal: ../b');
  });
  it('resolves symlinks, refusing those that lead out, for existing and new paths', async () => {
    expect(await ws.resolve('in')).toBe(path.join(ws.root, 'sub'));
    await expect(ws.resolve('out/passwd')).rejects.toThrow('escapes workspace jail via symlink');
    await expect(ws.resolve('out/new/file')).rejects.toThrow('escapes workspace jail via symlink');
    expect(await ws.resolve('in/new/file')).toBe(path.join(ws.root, 'in/new/file'));
  });
  it('names paths relative to it', () => {
    expect(ws.relative(path.join(ws.root, 'a/b'))).toBe('a/b');
    expect(ws.relative(ws.root)).toBe('.');
  });
});
