import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { createHandlerContext, type HandlerContext } from '@connectrpc/connect';
import { setAttribute } from 'fs-xattr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Filesystem, ListDirRequestSchema, type EntryInfo } from '../../../../src/gen/filesystem/filesystem_pb.js';
import { FilesystemContext } from '../../../../src/services/filesystem/context.js';
import { listDir, type SyncTuning } from '../../../../src/services/filesystem/list-dir.js';
import { parseMountPoints } from '../../../../src/services/filesystem/mounts.js';
import type { ServiceDeps } from '../../../../src/services/context.js';
import { DaemonState } from '../../../../src/state.js';
import { entryInfo } from '../../../../src/system/entry.js';
import { UserDb } from '../../../../src/system/users.js';

function handlerContext(): HandlerContext {
  return createHandlerContext({
    service: Filesystem,
    method: Filesystem.method.listDir,
    protocolName: 'connect',
    requestMethod: 'POST',
    url: 'http://localhost/filesystem.Filesystem/ListDir',
  });
}

describe('listDir on a directory larger than one synchronous batch', () => {
  let root: string;
  const users = new UserDb();
  const fs = new FilesystemContext({ users, state: new DaemonState({ accessToken: undefined, user: 'root', workdir: undefined }) } as unknown as ServiceDeps);
  // Names whose UTF-16 order differs from their UTF-8 byte order (U+FF5E sorts after U+1F600 in UTF-16).
  const tricky = ['\uFF5E', '\u{1F600}', 'caf\u00e9', 'a b'];
  const list = async (dir: string, depth: number, tuning?: SyncTuning): Promise<EntryInfo[]> =>
    (await listDir(fs, create(ListDirRequestSchema, { path: dir, depth }), handlerContext(), tuning)).entries;

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'list-dir-'));
    for (let i = 0; i < 150; i++) writeFileSync(path.join(root, `f${i}`), 'x'.repeat(i));
    for (const name of tricky) writeFileSync(path.join(root, name), name);
    mkdirSync(path.join(root, 'sub'));
    for (let i = 0; i < 70; i++) writeFileSync(path.join(root, 'sub', `g${i}`), '');
    symlinkSync(path.join(root, 'sub'), path.join(root, 'to-sub'));
    symlinkSync(path.join(root, 'gone'), path.join(root, 'broken'));
    await setAttribute(path.join(root, 'f7'), 'user.e2b.tag', 'seven');
    await setAttribute(path.join(root, 'sub', 'g69'), 'user.e2b.tag', 'last');
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('gives every entry in byte order, each as Stat describes it alone', async () => {
    const entries = await list(root, 1);
    const names = [...Array.from({ length: 150 }, (_, i) => `f${i}`), ...tricky, 'sub', 'to-sub', 'broken'];
    names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(entries.map((e) => e.name)).toEqual(names);
    for (const e of entries) expect(e).toEqual(await entryInfo(e.path, users));
    expect(entries.find((e) => e.name === 'f7')?.metadata).toEqual({ tag: 'seven' });
    expect(entries.find((e) => e.name === 'to-sub')?.symlinkTarget).toBe(path.join(root, 'sub'));
    expect(entries.find((e) => e.name === 'broken')?.symlinkTarget).toBe(path.join(root, 'broken'));
  });

  it('walks a subdirectory right after its entry, and not through the link to it', async () => {
    const entries = await list(root, 2);
    const paths = entries.map((e) => path.relative(root, e.path));
    const at = paths.indexOf('sub');
    expect(paths.slice(at + 1, at + 71)).toEqual(Array.from({ length: 70 }, (_, i) => `sub/g${i}`).sort());
    expect(paths.filter((p) => p.startsWith('to-sub/'))).toEqual([]);
    expect(entries.find((e) => e.name === 'g69')?.metadata).toEqual({ tag: 'last' });
  });

  it('answers the same through the thread pool as synchronously', async () => {
    const sync = await list(root, 2);
    // A batch counts as slow at once: everything after the first batch of 10 goes through the pool.
    expect(await list(root, 2, { batch: 10, slowBatchMs: -1 })).toEqual(sync);
    // Batches of one, each followed by a turn of the event loop.
    expect(await list(root, 2, { batch: 1, slowBatchMs: 1e9 })).toEqual(sync);
  });
});

describe('parseMountPoints', () => {
  it('takes the fifth field and decodes the kernel escapes', () => {
    const text = [
      '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '40 22 0:35 / /mnt/my\\040bucket rw,nosuid - fuse.gcsfuse bucket rw',
      '41 22 0:36 / /tab\\011and\\134slash rw - tmpfs tmpfs rw',
      '',
    ].join('\n');
    expect([...parseMountPoints(text)]).toEqual(['/', '/mnt/my bucket', '/tab\tand\\slash']);
  });
});
