import { chownSync, mkdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { InvalidArgumentError, NotFoundError, type Sandbox } from 'e2b';
import { Filesystem } from '../../src/gen/filesystem/filesystem_pb.js';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startSdkDaemon } from '../helpers/sdk.js';
import { ensureUser, scratchDir } from './files-support.js';

describe('filesystem RPCs through the SDK', () => {
  let daemon: RunningDaemon;
  let sandbox: Sandbox;
  let root: string;
  let account: ReturnType<typeof ensureUser>;

  beforeAll(async () => {
    account = ensureUser();
    root = scratchDir('rpc');
    ({ daemon, sandbox } = await startSdkDaemon());
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  describe('list', () => {
    let dir: string;
    beforeAll(() => {
      dir = path.join(root, 'listing');
      mkdirSync(path.join(dir, 'sub1/deep'), { recursive: true });
      mkdirSync(path.join(dir, 'sub2'));
      writeFileSync(path.join(dir, 'file1.txt'), 'Hello, world!', { mode: 0o640 });
      writeFileSync(path.join(dir, 'sub1/inner.txt'), 'inner');
      writeFileSync(path.join(dir, 'sub1/deep/bottom.txt'), 'bottom');
      utimesSync(path.join(dir, 'file1.txt'), new Date('2024-05-01T12:00:00Z'), new Date('2024-05-01T12:00:00Z'));
    });

    it('lists one level by default, in name order, with type, size, permissions and mtime', async () => {
      const entries = await sandbox.files.list(dir);
      expect(entries.map((e) => e.name)).toEqual(['file1.txt', 'sub1', 'sub2']);
      expect(entries.map((e) => e.type)).toEqual(['file', 'dir', 'dir']);
      expect(entries.map((e) => e.path)).toEqual([`${dir}/file1.txt`, `${dir}/sub1`, `${dir}/sub2`]);
      const [file, sub1] = entries;
      expect(file!.size).toBe('Hello, world!'.length);
      expect(file!.mode).toBe(statSync(path.join(dir, 'file1.txt')).mode & 0o777);
      expect(file!.permissions).toBe('-rw-r-----');
      expect(file!.owner).toBe('root');
      expect(file!.group).toBe('root');
      expect(file!.modifiedTime?.toISOString()).toBe('2024-05-01T12:00:00.000Z');
      expect(file!.symlinkTarget).toBeUndefined();
      expect(sub1!.permissions).toMatch(/^drwx/);
    });

    it('walks two levels with depth 2 and no further', async () => {
      const entries = await sandbox.files.list(dir, { depth: 2 });
      expect(entries.map((e) => path.relative(dir, e.path))).toEqual([
        'file1.txt',
        'sub1',
        'sub1/deep',
        'sub1/inner.txt',
        'sub2',
      ]);
    });

    it('treats depth 0 on the wire as depth 1', async () => {
      const client = createClient(Filesystem, createConnectTransport({ baseUrl: daemon.url, httpVersion: '1.1' }));
      const res = await client.listDir({ path: dir, depth: 0 });
      expect(res.entries.map((e) => e.name)).toEqual(['file1.txt', 'sub1', 'sub2']);
    });

    it('follows a symlink given as the path but lists links inside as entries', async () => {
      const links = path.join(root, 'links');
      mkdirSync(links);
      symlinkSync(path.join(dir, 'sub1'), path.join(links, 'to-dir'));
      symlinkSync(path.join(dir, 'file1.txt'), path.join(links, 'to-file'));

      const through = await sandbox.files.list(path.join(links, 'to-dir'));
      expect(through.map((e) => e.path)).toEqual([`${links}/to-dir/deep`, `${links}/to-dir/inner.txt`]);

      const inside = await sandbox.files.list(links, { depth: 3 });
      expect(inside.map((e) => e.name)).toEqual(['to-dir', 'to-file']);
      const toDir = inside[0]!;
      expect(toDir.type).toBe('dir');
      expect(toDir.symlinkTarget).toBe(path.join(dir, 'sub1'));
      expect(inside[1]!.type).toBe('file');
      expect(inside[1]!.permissions).toBe('Lrwxrwxrwx');
    });

    it('refuses a cyclic symlink with failed_precondition', async () => {
      const loop = path.join(root, 'loop');
      symlinkSync(loop, loop);
      const client = createClient(Filesystem, createConnectTransport({ baseUrl: daemon.url, httpVersion: '1.1' }));
      const err = ConnectError.from(await client.listDir({ path: loop }).catch((e: unknown) => e));
      expect(err.code).toBe(Code.FailedPrecondition);
    });

    it('gives InvalidArgumentError for a file and NotFoundError for a missing directory', async () => {
      await expect(sandbox.files.list(path.join(dir, 'file1.txt'))).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(sandbox.files.list(path.join(dir, 'nope'))).rejects.toBeInstanceOf(NotFoundError);
    });
  });

  it('answers exists and getInfo, with the resolved target of a symlink', async () => {
    const target = path.join(root, 'info-target.txt');
    writeFileSync(target, 'abc');
    symlinkSync(target, path.join(root, 'info-link'));

    expect(await sandbox.files.exists(target)).toBe(true);
    expect(await sandbox.files.exists(path.join(root, 'info-missing'))).toBe(false);

    const info = await sandbox.files.getInfo(path.join(root, 'info-link'));
    expect(info.type).toBe('file');
    expect(info.name).toBe('info-link');
    expect(info.symlinkTarget).toBe(target);
    await expect(sandbox.files.getInfo(path.join(root, 'info-missing'))).rejects.toBeInstanceOf(NotFoundError);
  });

  it('renames a file, creating the destination parents, and answers the new entry', async () => {
    const from = path.join(root, 'rename-me.txt');
    writeFileSync(from, 'moving');
    const to = path.join(root, 'moved/into/here.txt');
    const info = await sandbox.files.rename(from, to);
    expect(info.path).toBe(to);
    expect(info.name).toBe('here.txt');
    expect(info.type).toBe('file');
    expect(info.size).toBe(6);
    expect(await sandbox.files.exists(from)).toBe(false);
    await expect(sandbox.files.rename(from, to)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('makes a directory with its parents once, then reports it exists; a file in the way is invalid', async () => {
    const dir = path.join(root, 'made/a/b');
    expect(await sandbox.files.makeDir(dir)).toBe(true);
    expect(statSync(dir).isDirectory()).toBe(true);
    expect(await sandbox.files.makeDir(dir)).toBe(false);
    writeFileSync(path.join(root, 'plain'), '');
    await expect(sandbox.files.makeDir(path.join(root, 'plain'))).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('makes directories owned by the requesting user', async () => {
    const dir = path.join(root, 'owned/by/user');
    mkdirSync(path.join(root, 'owned'));
    await sandbox.files.makeDir(dir, { user: 'user' });
    for (const p of [path.join(root, 'owned/by'), dir]) {
      expect(statSync(p).uid, p).toBe(account.uid);
      expect(statSync(p).gid, p).toBe(account.gid);
    }
    expect(statSync(path.join(root, 'owned')).uid).toBe(0);
    const info = await sandbox.files.getInfo(dir);
    expect(info.owner).toBe('user');
  });

  it('removes a whole tree, and removing a missing path is not an error (as envd)', async () => {
    const tree = path.join(root, 'tree');
    mkdirSync(path.join(tree, 'a/b/c'), { recursive: true });
    writeFileSync(path.join(tree, 'a/b/c/leaf'), 'x');
    await sandbox.files.remove(tree);
    expect(await sandbox.files.exists(tree)).toBe(false);
    await sandbox.files.remove(tree);
  });

  it('removes a symlink without touching its target', async () => {
    const target = path.join(root, 'kept-dir');
    mkdirSync(target);
    writeFileSync(path.join(target, 'kept'), 'k');
    symlinkSync(target, path.join(root, 'link-to-kept'));
    await sandbox.files.remove(path.join(root, 'link-to-kept'));
    expect(statSync(path.join(target, 'kept')).isFile()).toBe(true);
  });

  it('resolves relative paths against the user home', async () => {
    const name = `sandboxd-rel-${process.pid}`;
    try {
      expect(await sandbox.files.makeDir(name, { user: 'user' })).toBe(true);
      expect(statSync(path.join(account.home, name)).isDirectory()).toBe(true);
      const entries = await sandbox.files.list('~', { user: 'user' });
      expect(entries.map((e) => e.path)).toContain(path.join(account.home, name));
      chownSync(path.join(account.home, name), 0, 0);
      expect((await sandbox.files.getInfo(name, { user: 'user' })).owner).toBe('root');
    } finally {
      rmSync(path.join(account.home, name), { recursive: true, force: true });
    }
  });
});
