import { lstatSync, watch, type BigIntStats, type FSWatcher } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { EventType, type EntryInfo } from '../../gen/filesystem/filesystem_pb.js';
import { entryInfo } from '../../system/entry.js';
import type { Logger } from '../../log.js';
import type { UserDb } from '../../system/users.js';
import { isLocalFilesystemSync } from '../../system/xattrs.js';
import { IN, nativeInotify, type InotifyHandle, type NativeInotify } from './native-inotify.js';
import { isDaemonTempName, observeLandings } from './replace-hints.js';

/**
 * Directory watching on inotify, one watch per directory as fsnotify does: through our addon's reader
 * (native-inotify.ts), which hands over each event's mask, or else through Node's fs.watch.
 *
 * Why not chokidar or `fs.watch({recursive: true})`: both put an inotify watch on every file and
 * stat the whole tree up front (measured on 20,000 files in 526 directories: chokidar 1.7 s,
 * +194 MiB, 20,526 watches; Node's recursive mode 0.67 s, +85 MiB, 20,526 watches; one watch per
 * directory 28 ms, +6 MiB, 526 watches), and neither can tell a rename from a remove or a chmod
 * from a write. fs.watch reports only 'rename' (something appeared or went) and 'change'
 * (IN_MODIFY or IN_ATTRIB); an lstat per event recovers envd's event types:
 * - 'rename' and the path exists → CREATE (a new directory is watched too when recursive);
 * - 'rename' and it is gone → RENAME when the next event of the same inotify read is a name that
 *   appeared (the other half of a move), else REMOVE;
 * - 'change' → CHMOD when only the inode changed (ctime after mtime, or a directory), else WRITE.
 * The addon's reader needs none of that: its masks map one to one, as fsnotify maps them for envd
 * (IN_CREATE/IN_MOVED_TO → CREATE, IN_MOVED_FROM → RENAME, IN_DELETE → REMOVE, IN_MODIFY → WRITE,
 * IN_ATTRIB → CHMOD), so a move out of the tree is a RENAME, as envd has it (fs.watch: a REMOVE).
 * The daemon's own upload temporaries are hidden, and the rename that lands an upload is replaced
 * by the events its writer hands over (replace-hints.ts): what envd's in-place write shows.
 */

export interface WatchEvent {
  /** Path relative to the watched directory. */
  name: string;
  type: EventType;
  entry?: EntryInfo;
}

export interface DirectoryWatcherOptions {
  recursive: boolean;
  /** Attach EntryInfo to create, write and chmod events (best effort: absent when the path is gone). */
  includeEntry: boolean;
  users: UserDb;
  onEvent: (event: WatchEvent) => void;
  /** The watch cannot go on (e.g. the inotify watch limit was hit); no more events follow. */
  onError: (err: Error) => void;
  /** Told once whether the addon's reader is used (see native-inotify.ts). */
  logger?: Logger;
}

interface RawEvent {
  dir: string;
  kind: string;
  name: string;
  /** Events delivered by the same inotify read share a batch (the halves of a move do). */
  batch: number;
  /** Set for a daemon write that landed here: the events to report, and whom to tell once done. */
  landing?: { types: readonly EventType[]; done: () => void };
  /** The inotify mask, from the addon's reader (then `kind` is 'native'). */
  mask?: number;
}

/** How long a name reported as created by a directory scan is not reported again. */
const SCAN_DEDUP_MS = 2_000;

/**
 * Events judged or waiting to be judged, at most: beyond it the watch ends as fsnotify's does when the
 * kernel's queue overflows (a burst faster than entry info can be read for it).
 */
const MAX_QUEUED = 16_384;
const OVERFLOW = 'fsnotify: queue or buffer overflow';

/** The kernel dropped the watch: the directory went (its parent reports that) or was unmounted. */
const SELF_GONE = IN.DELETE_SELF | IN.MOVE_SELF | IN.IGNORED;

export class DirectoryWatcher {
  /** Each watched directory: its fs.watch, or its watch descriptor on the addon's inotify fd. */
  private readonly dirs = new Map<string, FSWatcher | number>();
  private readonly byWd = new Map<number, string>();
  private native: { api: NativeInotify; handle: InotifyHandle } | undefined;
  private readonly prefix: string;
  /** Watched directories on local filesystems, whose events are judged with a synchronous lstat. */
  private readonly local = new Set<string>();
  private readonly queue: RawEvent[] = [];
  private readonly scanned = new Map<string, number>();
  /** mtime of each file a daemon write just landed, until its next change event (see handle). */
  private readonly landedMtimes = new Map<string, bigint>();
  /** Paths whose next rename event is a daemon write landing (reported from its hand-over instead). */
  private readonly landings = new Map<string, number>();
  private unobserve: (() => void) | undefined;
  private draining = false;
  private batch = 0;
  private batchOpen = false;
  private closed = false;

  private constructor(
    readonly root: string,
    private readonly opts: DirectoryWatcherOptions,
  ) {
    this.prefix = root.endsWith('/') ? root : root + '/';
  }

  /** Starts watching `root` (a directory); throws when even the root cannot be watched. */
  static async start(root: string, opts: DirectoryWatcherOptions): Promise<DirectoryWatcher> {
    const w = new DirectoryWatcher(root, opts);
    const api = await nativeInotify(opts.logger);
    if (api) w.native = { api, handle: api.open((events) => w.rawNative(events)) };
    try {
      w.addDir(root, true);
    } catch (err) {
      w.close();
      throw err;
    }
    w.unobserve = observeLandings({
      expect: (target) => w.expectLanding(target),
      abandon: (target) => w.forgetLanding(target),
      landed: (target, types) => w.landed(target, types),
    });
    if (opts.recursive) await w.scan(root, false);
    return w;
  }

  /** Number of directories under watch (one inotify watch each). */
  get watchedDirectories(): number {
    return this.dirs.size;
  }

  /** Whether the addon's reader (not fs.watch) delivers this watcher's events. */
  get nativeReader(): boolean {
    return this.native !== undefined;
  }

  close(): void {
    this.closed = true;
    this.unobserve?.();
    for (const ev of this.queue) ev.landing?.done();
    this.queue.length = 0;
    for (const w of this.dirs.values()) if (typeof w !== 'number') w.close();
    if (this.native) this.native.api.close(this.native.handle);
    this.dirs.clear();
    this.byWd.clear();
    this.local.clear();
  }

  private addDir(dir: string, isRoot = false): void {
    if (this.closed || this.dirs.has(dir)) return;
    let w: FSWatcher | number;
    try {
      if (this.native) w = this.native.api.add(this.native.handle, dir);
      else w = watch(dir, { persistent: false }, (kind, name) => this.raw(dir, kind, name));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (isRoot) throw err;
      // Gone again before we got to it: its removal is reported by its parent.
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      this.fail(new Error(`error adding path ${dir} to watcher: ${(err as Error).message}`));
      return;
    }
    this.dirs.set(dir, w);
    if (typeof w === 'number') {
      this.byWd.set(w, dir);
      return;
    }
    w.on('error', () => this.dropTree(dir));
    if (isLocalFilesystemSync(dir)) this.local.add(dir);
  }

  /** Watches every directory below `dir`; with `announce`, what is found is reported as created. */
  private async scan(dir: string, announce: boolean): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (this.closed) return;
      if (isDaemonTempName(e.name)) continue;
      const p = path.join(dir, e.name);
      if (announce) {
        this.remember(p);
        await this.emit(EventType.CREATE, p);
      }
      if (e.isDirectory()) {
        this.addDir(p);
        await this.scan(p, announce);
      }
    }
  }

  private expectLanding(target: string): boolean {
    if (this.closed || !this.dirs.has(path.dirname(target))) return false;
    this.landings.set(target, (this.landings.get(target) ?? 0) + 1);
    return true;
  }

  private forgetLanding(target: string): void {
    const n = this.landings.get(target) ?? 0;
    if (n > 1) this.landings.set(target, n - 1);
    else this.landings.delete(target);
  }

  /** Queues a landing's events behind everything seen so far; resolves once they are reported. */
  private landed(target: string, types: readonly EventType[]): Promise<void> {
    return new Promise<void>((done) => {
      if (this.closed) return done();
      this.queue.push({ dir: path.dirname(target), kind: 'landed', name: path.basename(target), batch: -1, landing: { types, done } });
      this.kick();
    });
  }

  private rememberLandedMtime(p: string, mtimeNs: bigint): void {
    if (this.landedMtimes.size >= 1000) this.landedMtimes.clear();
    this.landedMtimes.set(p, mtimeNs);
  }

  private remember(p: string): void {
    const now = Date.now();
    if (this.scanned.size > 1000) for (const [q, t] of this.scanned) if (now - t >= SCAN_DEDUP_MS) this.scanned.delete(q);
    this.scanned.set(p, now);
  }

  private dropTree(dir: string): void {
    for (const [d, w] of this.dirs) {
      if (d === dir || d.startsWith(dir + '/')) {
        if (typeof w !== 'number') w.close();
        else if (this.byWd.get(w) === d) {
          this.byWd.delete(w);
          this.native?.api.remove(this.native.handle, w);
        }
        this.dirs.delete(d);
        this.local.delete(d);
      }
    }
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.close();
    this.opts.onError(err);
  }

  /** One read of the addon's inotify fd: wd, mask, cookie, name per event (native-inotify.ts). */
  private rawNative(events: (number | string)[]): void {
    if (this.closed) return;
    const whole = events.length - (events.length % 4);
    for (let i = 0; i < whole; i += 4) {
      const mask = events[i + 1] as number;
      if (mask & IN.Q_OVERFLOW) return this.fail(new Error(OVERFLOW));
      const dir = this.byWd.get(events[i] as number);
      if (dir === undefined) continue;
      const name = events[i + 3] as string;
      if (mask & SELF_GONE) {
        if (name === '') this.dropTree(dir);
        continue;
      }
      // Changes of a watched directory itself: its parent reports them, if watched (as with fs.watch).
      if (name === '') continue;
      if (this.queue.length === 0 && !this.draining && this.judgeNow(dir, name, mask)) continue;
      this.queue.push({ dir, kind: 'native', name, batch: 0, mask });
    }
    if (whole < events.length) return this.fail(new Error(`reading inotify failed (errno ${String(events[whole])})`));
    if (this.queue.length > MAX_QUEUED) return this.fail(new Error(OVERFLOW));
    this.kick();
  }

  private raw(dir: string, kind: string, name: string | Buffer | null): void {
    if (this.closed || name === null) return;
    if (!this.batchOpen) {
      this.batch++;
      this.batchOpen = true;
      setImmediate(() => (this.batchOpen = false));
    }
    this.queue.push({ dir, kind, name: name.toString(), batch: this.batch });
    if (this.queue.length > MAX_QUEUED) return this.fail(new Error(OVERFLOW));
    this.kick();
  }

  /**
   * Judges queued events at once: most need nothing but their own lstat. Only a name that went
   * waits a turn (see handle), for the rest of its inotify read: the other half of a move.
   */
  private kick(): void {
    if (!this.draining) {
      this.draining = true;
      void this.drain();
    }
  }

  private async drain(): Promise<void> {
    try {
      while (!this.closed && this.queue.length > 0) await this.handle(this.queue.shift()!);
    } catch (err) {
      this.fail(err as Error);
    } finally {
      this.draining = false;
    }
  }

  private async handle(ev: RawEvent): Promise<void> {
    if (isDaemonTempName(ev.name)) return;
    const full = path.join(ev.dir, ev.name);
    if (ev.landing) {
      try {
        for (const type of ev.landing.types) await this.emit(type, full);
        // Only fs.watch's 'change' needs the landed mtime to tell a chmod from a write.
        const st = this.native ? undefined : await lstatOf(full, this.local.has(ev.dir));
        if (st) this.rememberLandedMtime(full, st.mtimeNs);
      } finally {
        ev.landing.done();
      }
      return;
    }
    if (ev.mask !== undefined) return this.handleMask(ev.mask, full);
    if (ev.kind === 'rename' && this.landings.has(full)) {
      // The rename of a daemon write: its hand-over reports it.
      this.forgetLanding(full);
      return;
    }
    // On a local filesystem an lstat takes microseconds: asked synchronously, the event goes out
    // without a round trip through the thread pool (which, under load, was most of its latency).
    const sync = this.local.has(ev.dir);
    const st = sync ? lstatNow(full) : await lstatOf(full, false);
    if (!st && ev.name === path.basename(ev.dir)) {
      // inotify reports changes of a watched directory itself under its own name; its parent
      // reports them properly. If it is gone, so are its watches.
      if (!(await lstatOf(ev.dir, sync))) this.dropTree(ev.dir);
      return;
    }
    if (ev.kind === 'change') {
      if (!st) return;
      // A chmod within one clock tick of the data write leaves ctime equal to mtime; right after a
      // daemon write the landed mtime tells it apart: unchanged mtime means only the inode changed.
      const landedMtime = this.landedMtimes.get(full);
      this.landedMtimes.delete(full);
      const attributesOnly = st.isDirectory() || st.ctimeNs > st.mtimeNs || landedMtime === st.mtimeNs;
      return this.emit(attributesOnly ? EventType.CHMOD : EventType.WRITE, full);
    }
    if (st) {
      const seen = this.scanned.get(full);
      if (seen !== undefined && Date.now() - seen < SCAN_DEDUP_MS) return;
      await this.emit(EventType.CREATE, full);
      if (st.isDirectory() && this.opts.recursive) {
        this.addDir(full);
        await this.scan(full, true);
      }
      return;
    }
    this.dropTree(full);
    // After the poll phase, so both halves of a move are queued before the first is judged.
    if (this.batchOpen && ev.batch === this.batch) await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.closed) return;
    const next = this.queue[0];
    if (next && next.batch === ev.batch && next.kind === 'rename' && !isDaemonTempName(next.name)) {
      const nextPath = path.join(next.dir, next.name);
      if (nextPath === full) {
        // Created and removed before we looked: both happened.
        this.queue.shift();
        await this.emit(EventType.CREATE, full);
        return this.emit(EventType.REMOVE, full);
      }
      if (await lstatOf(nextPath, this.local.has(next.dir))) return this.emit(EventType.RENAME, full);
    }
    return this.emit(EventType.REMOVE, full);
  }

  /**
   * Reports an event of the addon's reader at once when nothing is ahead of it and it needs nothing
   * awaited (no entry info, no new directory to scan, no landing): most events. False: queue it.
   */
  private judgeNow(dir: string, name: string, mask: number): boolean {
    if (this.opts.includeEntry) return false;
    if (isDaemonTempName(name)) return true;
    const full = dir === '/' ? '/' + name : dir + '/' + name;
    let type: EventType;
    if (mask & (IN.CREATE | IN.MOVED_TO)) {
      if (this.landings.has(full) || (mask & IN.ISDIR && this.opts.recursive)) return false;
      const seen = this.scanned.get(full);
      if (seen !== undefined && Date.now() - seen < SCAN_DEDUP_MS) return true;
      type = EventType.CREATE;
    } else if (mask & (IN.MOVED_FROM | IN.DELETE)) {
      if (mask & IN.ISDIR) this.dropTree(full);
      type = mask & IN.MOVED_FROM ? EventType.RENAME : EventType.REMOVE;
    } else if (mask & IN.MODIFY) type = EventType.WRITE;
    else if (mask & IN.ATTRIB) type = EventType.CHMOD;
    else return true;
    this.opts.onEvent({ name: full.startsWith(this.prefix) ? full.slice(this.prefix.length) : path.relative(this.root, full), type });
    return true;
  }

  /** An event of the addon's reader: its mask says what happened, as fsnotify reads it for envd. */
  private async handleMask(mask: number, full: string): Promise<void> {
    if (mask & (IN.CREATE | IN.MOVED_TO)) {
      if (this.landings.has(full)) {
        // The rename of a daemon write: its hand-over reports it.
        this.forgetLanding(full);
        return;
      }
      const seen = this.scanned.get(full);
      if (seen !== undefined && Date.now() - seen < SCAN_DEDUP_MS) return;
      await this.emit(EventType.CREATE, full);
      if (mask & IN.ISDIR && this.opts.recursive) {
        this.addDir(full);
        await this.scan(full, true);
      }
      return;
    }
    if (mask & (IN.MOVED_FROM | IN.DELETE)) {
      if (mask & IN.ISDIR) this.dropTree(full);
      return this.emit(mask & IN.MOVED_FROM ? EventType.RENAME : EventType.REMOVE, full);
    }
    if (mask & IN.MODIFY) return this.emit(EventType.WRITE, full);
    if (mask & IN.ATTRIB) return this.emit(EventType.CHMOD, full);
  }

  private async emit(type: EventType, full: string): Promise<void> {
    if (this.closed) return;
    const event: WatchEvent = { name: full.startsWith(this.prefix) ? full.slice(this.prefix.length) : path.relative(this.root, full), type };
    if (this.opts.includeEntry && (type === EventType.CREATE || type === EventType.WRITE || type === EventType.CHMOD)) {
      event.entry = await entryInfo(full, this.opts.users).catch(() => undefined);
      if (this.closed) return;
    }
    this.opts.onEvent(event);
  }
}

async function lstatOf(p: string, sync: boolean): Promise<BigIntStats | undefined> {
  if (sync) return lstatNow(p);
  try {
    return await lstat(p, { bigint: true });
  } catch {
    return undefined;
  }
}

/** lstat answered in place: no promise, so an event is judged within its inotify callback. */
function lstatNow(p: string): BigIntStats | undefined {
  try {
    return lstatSync(p, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}
