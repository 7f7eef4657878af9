import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventType, FileType } from '../../../../src/gen/filesystem/filesystem_pb.js';
import { writeFileAtomically } from '../../../../src/services/filesystem/atomic-write.js';
import { NATIVE_WATCH_ENV } from '../../../../src/services/filesystem/native-inotify.js';
import { DirectoryWatcher, type WatchEvent } from '../../../../src/services/filesystem/watcher.js';
import { UserDb } from '../../../../src/system/users.js';

const T = EventType;
type Seen = [string, EventType];

/** Collects events and waits for a number of them (the wait is bounded; the test then compares). */
class Recorder {
  readonly events: WatchEvent[] = [];
  private mark = 0;
  onEvent = (e: WatchEvent): void => void this.events.push(e);

  /** Events after the previous call, once at least `count` arrived (or after 5 s). */
  async next(count: number): Promise<Seen[]> {
    for (let i = 0; i < 500 && this.events.length - this.mark < count; i++) await new Promise((r) => setTimeout(r, 10));
    // One more turn of the loop, so an unexpected extra event would show up too.
    await new Promise((r) => setTimeout(r, 30));
    const out = this.events.slice(this.mark).map((e): Seen => [e.name, e.type]);
    this.mark = this.events.length;
    return out;
  }
}

// Every test runs on both readers: the addon's inotify reader and Node's fs.watch (SANDBOXD_NATIVE_WATCH=0).
describe.each([
  ['the addon', true],
  ['fs.watch', false],
])('DirectoryWatcher on %s', (_reader, native) => {
  let root: string;
  let watcher: DirectoryWatcher | undefined;
  let rec: Recorder;
  const users = new UserDb();
  const start = async (recursive: boolean, includeEntry = false): Promise<DirectoryWatcher> => {
    watcher = await DirectoryWatcher.start(root, { recursive, includeEntry, users, onEvent: rec.onEvent, onError: (err) => rec.onEvent({ name: `error: ${err.message}`, type: T.UNSPECIFIED }) });
    expect(watcher.nativeReader).toBe(native);
    return watcher;
  };

  beforeEach(() => {
    if (native) delete process.env[NATIVE_WATCH_ENV];
    else process.env[NATIVE_WATCH_ENV] = '0';
    root = mkdtempSync(path.join(os.tmpdir(), 'watcher-'));
    rec = new Recorder();
  });
  afterEach(() => {
    watcher?.close();
    watcher = undefined;
    delete process.env[NATIVE_WATCH_ENV];
    rmSync(root, { recursive: true, force: true });
  });

  it('reports create, write, chmod, rename and remove as envd names them', async () => {
    await start(false);
    writeFileSync(path.join(root, 'a.txt'), 'x');
    expect(await rec.next(2)).toEqual([
      ['a.txt', T.CREATE],
      ['a.txt', T.WRITE],
    ]);
    appendFileSync(path.join(root, 'a.txt'), 'y');
    expect(await rec.next(1)).toEqual([['a.txt', T.WRITE]]);
    chmodSync(path.join(root, 'a.txt'), 0o600);
    expect(await rec.next(1)).toEqual([['a.txt', T.CHMOD]]);
    renameSync(path.join(root, 'a.txt'), path.join(root, 'b.txt'));
    expect(await rec.next(2)).toEqual([
      ['a.txt', T.RENAME],
      ['b.txt', T.CREATE],
    ]);
    rmSync(path.join(root, 'b.txt'));
    expect(await rec.next(1)).toEqual([['b.txt', T.REMOVE]]);
  });

  it('reports a move out of the watched directory as envd does (RENAME) on the addon, as a REMOVE on fs.watch', async () => {
    const outside = mkdtempSync(path.join(os.tmpdir(), 'watcher-outside-'));
    try {
      writeFileSync(path.join(root, 'leaving.txt'), 'x');
      await start(false);
      renameSync(path.join(root, 'leaving.txt'), path.join(outside, 'gone.txt'));
      // fs.watch reports only that the name went; without its other half in the same read, a remove.
      expect(await rec.next(1)).toEqual([['leaving.txt', native ? T.RENAME : T.REMOVE]]);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('sees only the top level unless recursive', async () => {
    mkdirSync(path.join(root, 'sub'));
    await start(false);
    writeFileSync(path.join(root, 'sub/inner.txt'), 'x');
    writeFileSync(path.join(root, 'top.txt'), 'x');
    expect(await rec.next(2)).toEqual([
      ['top.txt', T.CREATE],
      ['top.txt', T.WRITE],
    ]);
    expect(watcher!.watchedDirectories).toBe(1);
  });

  it('follows new directories when recursive, including what appears in them at once', async () => {
    mkdirSync(path.join(root, 'pre/deep'), { recursive: true });
    await start(true);
    expect(watcher!.watchedDirectories).toBe(3);
    appendFileSync(path.join(root, 'pre/deep/old.txt'), 'x');
    expect(await rec.next(2)).toEqual([
      ['pre/deep/old.txt', T.CREATE],
      ['pre/deep/old.txt', T.WRITE],
    ]);
    mkdirSync(path.join(root, 'n1/n2'), { recursive: true });
    writeFileSync(path.join(root, 'n1/n2/f.txt'), 'q');
    const seen = await rec.next(3);
    expect(seen.slice(0, 3)).toEqual([
      ['n1', T.CREATE],
      ['n1/n2', T.CREATE],
      ['n1/n2/f.txt', T.CREATE],
    ]);
    appendFileSync(path.join(root, 'n1/n2/f.txt'), 'more');
    expect(await rec.next(1)).toEqual([['n1/n2/f.txt', T.WRITE]]);
    rmSync(path.join(root, 'n1'), { recursive: true });
    const removed = await rec.next(3);
    expect(removed).toContainEqual(['n1/n2/f.txt', T.REMOVE]);
    expect(removed).toContainEqual(['n1', T.REMOVE]);
    await new Promise((r) => setTimeout(r, 50));
    expect(watcher!.watchedDirectories).toBe(3);
  });

  it("shows an upload as envd's in-place write, its events queued before the write resolves, without its temporary file", async () => {
    await start(false);
    const target = path.join(root, 'up.txt');
    const seen = (): Seen[] => rec.events.splice(0).map((e): Seen => [e.name, e.type]);
    const write = (text: string, metadata: Record<string, string> = {}) =>
      writeFileAtomically(target, Readable.from([Buffer.from(text)]), { uid: 0, gid: 0, metadata, keepMode: true, reportAs: 'upload' });
    await write('first');
    expect(seen()).toEqual([
      ['up.txt', T.CREATE],
      ['up.txt', T.CHMOD],
      ['up.txt', T.WRITE],
    ]);
    await write('second');
    expect(seen()).toEqual([
      ['up.txt', T.CHMOD],
      ['up.txt', T.WRITE],
    ]);
    // Setting metadata, and clearing it again, is one more chmod (envd's xattr writes).
    await write('third', { k: 'v' });
    await write('fourth');
    expect(seen()).toEqual([
      ['up.txt', T.CHMOD],
      ['up.txt', T.WRITE],
      ['up.txt', T.CHMOD],
      ['up.txt', T.CHMOD],
      ['up.txt', T.WRITE],
      ['up.txt', T.CHMOD],
    ]);
    // The rename's own inotify event stays hidden however late it is read.
    expect(await rec.next(0)).toEqual([]);
  });

  it('shows a new empty upload as create and chmod, and a compose as the create of its rename', async () => {
    await start(false);
    await writeFileAtomically(path.join(root, 'empty'), Readable.from([]), { uid: 0, gid: 0, metadata: {}, keepMode: true, reportAs: 'upload' });
    await writeFileAtomically(path.join(root, 'composed'), Readable.from([Buffer.from('ab')]), { uid: 0, gid: 0, metadata: {}, keepMode: false, reportAs: 'compose' });
    expect(await rec.next(3)).toEqual([
      ['empty', T.CREATE],
      ['empty', T.CHMOD],
      ['composed', T.CREATE],
    ]);
  });

  it('lets a write finish when its watcher closes before reporting it', async () => {
    await start(false);
    const writing = writeFileAtomically(path.join(root, 'w.txt'), Readable.from([Buffer.from('x')]), { uid: 0, gid: 0, metadata: {}, keepMode: true, reportAs: 'upload' });
    watcher!.close();
    await expect(writing).resolves.toBe(path.join(root, 'w.txt'));
  });

  it('attaches entry info to create, write and chmod, not to remove', async () => {
    await start(false, true);
    writeFileSync(path.join(root, 'e.txt'), 'abc');
    await rec.next(2);
    rmSync(path.join(root, 'e.txt'));
    await rec.next(1);
    const [created, written, removed] = rec.events;
    expect(created!.entry?.type).toBe(FileType.FILE);
    expect(created!.entry?.path).toBe(path.join(root, 'e.txt'));
    expect(written!.entry?.size).toBe(3n);
    expect(removed!.type).toBe(T.REMOVE);
    expect(removed!.entry).toBeUndefined();
  });

  it('stops reporting once closed', async () => {
    await start(true);
    watcher!.close();
    expect(watcher!.watchedDirectories).toBe(0);
    writeFileSync(path.join(root, 'late.txt'), 'x');
    expect(await rec.next(0)).toEqual([]);
  });
});
