import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getAttribute, setAttribute } from 'fs-xattr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { metadataProblem, onLocalFilesystem, readMetadata, readMetadataSync, replaceMetadata } from '../../../src/system/xattrs.js';

describe('metadataProblem (envd limits)', () => {
  it('accepts printable ASCII within the limits', () => {
    expect(metadataProblem({ author: 'mish', 'x-y_z.1': 'a value with spaces ~!' })).toBeUndefined();
    expect(metadataProblem({ ['k'.repeat(246)]: '' })).toBeUndefined();
  });
  it('names what is wrong', () => {
    expect(metadataProblem({ '': 'v' })).toBe('metadata key must not be empty');
    expect(metadataProblem({ ['k'.repeat(247)]: 'v' })).toMatch(/exceeds 246 bytes$/);
    expect(metadataProblem({ a: 'caf\u00e9' })).toBe('metadata value for key "a" contains non-printable-ASCII byte 0xe9 at offset 3');
    expect(metadataProblem({ a: 'tab\there' })).toMatch(/byte 0x09 at offset 3/);
    expect(metadataProblem({ a: 'v'.repeat(2000), b: 'v'.repeat(2100) })).toMatch(/^total metadata size \d+ exceeds 4096 bytes$/);
  });
});

describe('metadata on files', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'xattrs-'));
    file = path.join(dir, 'f');
    writeFileSync(file, 'x');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the whole user.e2b set and leaves other attributes alone', async () => {
    await setAttribute(file, 'user.other', 'keep');
    await replaceMetadata(file, { author: 'mish', purpose: 'upload' });
    expect(await readMetadata(file)).toEqual({ author: 'mish', purpose: 'upload' });
    await replaceMetadata(file, { author: 'alice' });
    expect(await readMetadata(file)).toEqual({ author: 'alice' });
    await replaceMetadata(file, {});
    expect(await readMetadata(file)).toEqual({});
    expect((await getAttribute(file, 'user.other')).toString()).toBe('keep');
  });

  it('skips values that are not UTF-8, as envd does', async () => {
    await setAttribute(file, 'user.e2b.good', 'fine');
    await setAttribute(file, 'user.e2b.bad', Buffer.from([0xff, 0xfe]));
    expect(await readMetadata(file)).toEqual({ good: 'fine' });
  });

  it('reads the same synchronously', async () => {
    await setAttribute(file, 'user.other', 'not ours');
    await setAttribute(file, 'user.e2b.good', 'fine');
    await setAttribute(file, 'user.e2b.bad', Buffer.from([0xff, 0xfe]));
    expect(readMetadataSync(file)).toEqual({ good: 'fine' });
    expect(readMetadataSync(path.join(dir, 'missing'))).toEqual({});
    expect(readMetadataSync('/proc/self/status')).toEqual({});
  });
});

describe('onLocalFilesystem', () => {
  it('knows the kernel filesystems and says no when it cannot tell', async () => {
    expect(await onLocalFilesystem('/proc')).toBe(true);
    expect(await onLocalFilesystem('/no/such/dir')).toBe(false);
  });
});
