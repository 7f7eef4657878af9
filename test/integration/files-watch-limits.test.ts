import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { EventType, Filesystem, type WatchDirResponse } from '../../src/gen/filesystem/filesystem_pb.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { inotifyWatches, scratchDir } from './files-support.js';

/** Every suite runs on both readers: the addon's inotify reader, and Node's fs.watch. */
const READERS: [string, NodeJS.ProcessEnv][] = [
  ["the addon's inotify reader", {}],
  ['fs.watch', { SANDBOXD_NATIVE_WATCH: '0' }],
];

const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

function rssOf(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
}

async function eventually(check: () => boolean): Promise<boolean> {
  for (let i = 0; i < 400; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

/** A watch stream read by hand: its start event awaited, then read only when the test asks. */
async function openStream(daemon: RunningDaemon, dir: string, opts: { recursive?: boolean; keepaliveSeconds?: number } = {}) {
  const fs = createClient(Filesystem, createConnectTransport({ baseUrl: daemon.url, httpVersion: '1.1' }));
  const controller = new AbortController();
  const headers = opts.keepaliveSeconds ? { 'Keepalive-Ping-Interval': String(opts.keepaliveSeconds) } : undefined;
  const it = fs.watchDir({ path: dir, recursive: opts.recursive ?? false }, { signal: controller.signal, headers })[Symbol.asyncIterator]();
  const first = await it.next();
  expect(first.value?.event.case).toBe('start');
  return {
    next: (): Promise<IteratorResult<WatchDirResponse>> => it.next(),
    /**
     * Reads until the stream ends (or, `untilQuiet`, until its first keepalive after an event);
     * resolves with its error (undefined for a clean end) and the event count.
     */
    async rest(untilQuiet = false): Promise<{ events: number; error: ConnectError | undefined }> {
      let events = 0;
      try {
        for (;;) {
          const r = await it.next();
          if (r.done || (untilQuiet && events > 0 && r.value.event.case === 'keepalive')) return { events, error: undefined };
          if (r.value.event.case === 'filesystem') events++;
        }
      } catch (err) {
        return { events, error: ConnectError.from(err) };
      }
    },
    close: () => controller.abort(),
  };
}

describe.each(READERS)('watching under pressure (%s)', (_reader, env) => {
  const native = env.SANDBOXD_NATIVE_WATCH !== '0';
  let daemon: RunningDaemon;
  let root: string;
  /** inotify watches of the idle daemon; each test waits for it again after closing its streams. */
  let idle: number;

  beforeAll(async () => {
    root = scratchDir('watch-limits');
    daemon = await startDaemon({ env });
    idle = inotifyWatches(daemon.child.pid!);
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('watches through the reader asked for', async () => {
    const dir = path.join(root, 'reader');
    mkdirSync(dir);
    const s = await openStream(daemon, dir);
    const started = await daemon.waitFor((r) => r.msg === 'watch started' && r.watch === dir, 'watch started');
    expect(started.native).toBe(native);
    s.close();
    expect(await eventually(() => inotifyWatches(daemon.child.pid!) === idle)).toBe(true);
  });

  it('leaves no fd and no watch behind when clients close their streams', async () => {
    const dir = path.join(root, 'closed');
    // A directory each: fs.watch shares one inotify watch among the watchers of one directory.
    for (let i = 0; i < 20; i++) mkdirSync(path.join(dir, `s${i}/sub`), { recursive: true });
    const pid = daemon.child.pid!;
    // One watch first: libuv opens its inotify fd on the first fs.watch and keeps it.
    // One watch of the same shape first: libuv opens its inotify fd on the first fs.watch (and its
    // io_uring on the first readdir) and keeps them.
    const warm = await openStream(daemon, path.join(dir, 's0'), { recursive: true });
    warm.close();
    expect(await eventually(() => inotifyWatches(pid) === idle)).toBe(true);
    const fds = openFds(pid);
    const streams = await Promise.all(Array.from({ length: 20 }, (_, i) => openStream(daemon, path.join(dir, `s${i}`), { recursive: true })));
    expect(inotifyWatches(pid)).toBe(idle + 40);
    for (const s of streams) s.close();
    const released = await eventually(() => inotifyWatches(pid) === idle && openFds(pid) === fds);
    expect({ watches: inotifyWatches(pid) - idle, fds: openFds(pid) - fds, released }).toEqual({ watches: 0, fds: 0, released: true });
  });

  it('drops the watches of a directory removed while watched, and the stream goes on', async () => {
    const dir = path.join(root, 'removed');
    mkdirSync(path.join(dir, 'a/b'), { recursive: true });
    const pid = daemon.child.pid!;
    const before = idle;
    const s = await openStream(daemon, dir, { recursive: true, keepaliveSeconds: 1 });
    expect(inotifyWatches(pid)).toBe(before + 3);
    rmSync(dir, { recursive: true });
    expect(await eventually(() => inotifyWatches(pid) === before)).toBe(true);
    let r;
    do r = await s.next();
    while (!r.done && r.value.event.case !== 'keepalive');
    expect(r.done).toBe(false);
    s.close();
  });

  it('follows a burst of new nested directories, with what is written in them at once', async () => {
    const dir = path.join(root, 'nested-burst');
    mkdirSync(dir);
    const s = await openStream(daemon, dir, { recursive: true });
    const want = new Set<string>();
    for (let i = 0; i < 40; i++) {
      mkdirSync(path.join(dir, `d${i}/e`), { recursive: true });
      writeFileSync(path.join(dir, `d${i}/e/f.txt`), 'x');
      want.add(`d${i}/e/f.txt`);
    }
    const created = new Set<string>();
    while (want.size > 0) {
      const r = await s.next();
      if (r.done) break;
      const ev = r.value.event;
      if (ev.case === 'filesystem' && ev.value.type === EventType.CREATE) {
        created.add(ev.value.name);
        want.delete(ev.value.name);
      }
    }
    expect([...want]).toEqual([]);
    for (let i = 0; i < 40; i++) expect(created.has(`d${i}`) && created.has(`d${i}/e`)).toBe(true);
    s.close();
  });

  it('ends the stream of a client that stops reading during a burst, with the daemon bounded', async () => {
    const dir = path.join(root, 'slow-reader');
    mkdirSync(dir);
    const pid = daemon.child.pid!;
    const before = idle;
    const rss = rssOf(pid);
    const s = await openStream(daemon, dir, { keepaliveSeconds: 1 });
    // Long names fill the sockets' buffers sooner; two files in turn, so inotify merges nothing.
    const fds = ['a', 'b'].map((c) => openSync(path.join(dir, c.repeat(200)), 'w'));
    try {
      for (let i = 0; i < 100_000; i++) writeSync(fds[i % 2]!, 'x');
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    const end = await s.rest(true);
    s.close();
    if (end.error || native) {
      // Fallen behind by the stream's capacity, or (the addon's reader) the kernel's queue overflowed.
      expect(end.error?.code === Code.ResourceExhausted || (native && end.error?.code === Code.Internal && /overflow/.test(end.error.message))).toBe(true);
    }
    // Either way not every event arrived: fs.watch loses the kernel's overflow without a word.
    expect(end.events).toBeLessThan(100_000);
    expect(rssOf(pid) - rss).toBeLessThan(256 * 1024 * 1024);
    expect(await eventually(() => inotifyWatches(pid) === before)).toBe(true);
  });

  // fs.watch cannot tell: libuv drops the kernel's overflow event, so its events just stop being complete.
  if (native) {
    it("ends a poll watcher with envd's watcher error when the kernel's queue overflows", async () => {
      const dir = path.join(root, 'overflow');
      mkdirSync(dir);
      const fs = createClient(Filesystem, createConnectTransport({ baseUrl: daemon.url, httpVersion: '1.1' }));
      const { watcherId } = await fs.createWatcher({ path: dir });
      const max = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
      // Stopped, the daemon reads nothing while more events than the kernel queues are made.
      process.kill(daemon.child.pid!, 'SIGSTOP');
      try {
        for (let i = 0; i * 2 <= max; i++) writeFileSync(path.join(dir, `f${i}`), 'x');
      } finally {
        process.kill(daemon.child.pid!, 'SIGCONT');
      }
      let failure: ConnectError | undefined;
      for (let i = 0; i < 400 && !failure; i++) {
        await fs.getWatcherEvents({ watcherId }).catch((err: unknown) => (failure = ConnectError.from(err)));
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(failure?.code).toBe(Code.Internal);
      expect(failure?.rawMessage).toMatch(/^watcher error: .*overflow/);
      await fs.removeWatcher({ watcherId });
    });
  }
});

describe.each(READERS)('at the inotify watch limit (%s)', (_reader, env) => {
  let daemon: RunningDaemon;
  let root: string;

  beforeAll(async () => {
    root = scratchDir('watch-enospc');
    // Its own user namespace, whose inotify watch limit is 3 (the machine's stays as it is).
    daemon = await startDaemon({ env, wrap: ['unshare', '-U', '-r', 'sh', '-c', 'echo 3 > /proc/sys/user/max_inotify_watches && exec "$0" "$@"'] });
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('fails a recursive watch that needs more watches, naming the limit and the path, and the next watch works', async () => {
    mkdirSync(path.join(root, 'a/b/c'), { recursive: true });
    const fs = createClient(Filesystem, createConnectTransport({ baseUrl: daemon.url, httpVersion: '1.1' }));
    const failed = await (async () => {
      try {
        for await (const res of fs.watchDir({ path: root, recursive: true })) if (res.event.case === 'keepalive') break;
      } catch (err) {
        return ConnectError.from(err);
      }
      return undefined;
    })();
    expect(failed?.code).toBe(Code.Internal);
    expect(failed?.rawMessage).toMatch(/error adding path .*\/a\/b\/c to watcher: ENOSPC: System limit for number of file watchers reached/);
    const s = await openStream(daemon, path.join(root, 'a'));
    writeFileSync(path.join(root, 'a/after.txt'), 'x');
    const r = await s.next();
    expect(r.value?.event.case === 'filesystem' && r.value.event.value.name).toBe('after.txt');
    s.close();
  });
});
