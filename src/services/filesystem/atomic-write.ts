import { closeSync, fchmodSync, fchownSync, lstatSync, openSync, renameSync, rmSync, statfsSync, writev, writevSync, type Stats } from 'node:fs';
import { lstat, open, readlink, realpath, rename, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { writeSmallFile as NativeWriteSmallFile } from 'sandboxd-spawn';
import { EventType } from '../../gen/filesystem/filesystem_pb.js';
import { spawnAddonExport } from '../../system/spawn-addon.js';
import { isXattrUnsupported, onLocalFilesystem, readMetadata, readMetadataSync, replaceMetadata } from '../../system/xattrs.js';
import { ensureDirs } from './ensure-dirs.js';
import { errnoCode, messageOf } from './errors.js';
import { announceLanding, tempPathFor } from './replace-hints.js';

/**
 * What went wrong, in terms a caller can answer with: the target is a directory (400), the disk or
 * inode table is full (507), the source stream failed (client gone, bad gzip: the caller decides),
 * or anything else (500).
 */
export type WriteFailureKind = 'is-directory' | 'no-space' | 'source' | 'internal';

export class WriteFailure extends Error {
  constructor(
    readonly kind: WriteFailureKind,
    message: string,
    readonly source?: unknown,
  ) {
    super(message);
  }
}

export interface AtomicWriteOptions {
  uid: number;
  gid: number;
  /** Replaces the file's `user.e2b.*` metadata (empty clears it). */
  metadata: Record<string, string>;
  /** Keep the permission bits of a file being overwritten (an upload does, as envd's O_TRUNC does). */
  keepMode: boolean;
  /** Permission bits for a file that does not exist yet, before the umask (default 0666, as O_CREAT). */
  createMode?: number;
  /** Told when the filesystem has no xattrs: the bytes are kept, the metadata is not. */
  onXattrUnsupported?: (err: unknown) => void;
  /** Which envd request watchers should see (landingEvents; default upload); the temporary file is never shown. */
  reportAs?: 'upload' | 'compose';
  /**
   * Directories this request already found, or made, on a local filesystem; shared by the writes of
   * one request. Writing into one of them skips ensureDirs and looks the target up synchronously
   * (a dentry-cache hit, no thread-pool round trip and no ENOENT exception for a new file): for a
   * form of 10,000 small files that was most of the daemon's CPU per file.
   */
  knownDirs?: Set<string>;
}

/**
 * What envd's watchers report for the same request, so a watcher here shows the same list.
 * envd's upload writes in place: a chown (chmod), O_CREAT for a new file (create), the bytes or,
 * for an existing file, the O_TRUNC (write; inotify merges repeated writes), then the metadata
 * xattrs if any are set or cleared (chmod). For a new file: create, chmod, write. For an
 * overwrite: chmod, write. Its compose renames a temporary file onto the destination: a create.
 */
export function landingEvents(
  reportAs: AtomicWriteOptions['reportAs'] = 'upload',
  w: { existed: boolean; bytes: number; metadataChanged: boolean },
): EventType[] {
  if (reportAs === 'compose') return [EventType.CREATE];
  const events = w.existed ? [EventType.CHMOD] : [EventType.CREATE, EventType.CHMOD];
  if (w.existed || w.bytes > 0) events.push(EventType.WRITE);
  if (w.metadataChanged) events.push(EventType.CHMOD);
  return events;
}

/** Bytes that may wait for a write before the source is paused (and at most one write in flight). */
const WRITE_CHUNK = 1024 * 1024;

/**
 * Chunks are gathered to this many bytes before a write (unless the source has ended): the HTTP
 * parser hands over at most 64 KiB at a time, often a few bytes, and a write per chunk was a
 * thread-pool round trip each, ~8,000 per 256 MiB upload (perf: 40,000 context switches per
 * two uploads, 10,000 with this).
 */
const MIN_WRITE = 256 * 1024;

/**
 * A source that ends within this many bytes, into a directory known to be local, is written with
 * synchronous calls: open, chown, write, close and rename are each a few microseconds in the
 * kernel, and as thread-pool round trips they were most of the daemon's CPU for a form of 10,000
 * small files (each hop a promise, a worker wake-up and a completion callback).
 */
export const SMALL_FILE_BYTES = 64 * 1024;

// proc, sysfs, cgroup, cgroup2, debugfs, tracefs, securityfs, configfs: files there are written in place.
const PSEUDO_FILESYSTEMS = new Set([0x9fa0, 0x62656572, 0x27e0eb, 0x63677270, 0x64626720, 0x74726163, 0x73636673, 0x62656570]);

const isNoSpace = (err: unknown): boolean => errnoCode(err) === 'ENOSPC' || errnoCode(err) === 'EDQUOT';

/**
 * Streams `source` into `target` without ever truncating what is there: the bytes go to a temporary
 * file in the same directory, owned by uid:gid, that is renamed over the target only once complete.
 * Missing parents are created for the user. A symlink target is followed (the link stays); device
 * files and files on pseudo filesystems (/proc, /sys) are written in place, since nothing can be
 * renamed onto them. Resolves to the path the bytes landed at.
 */
export async function writeFileAtomically(target: string, source: Readable, opts: AtomicWriteOptions): Promise<string> {
  const dir = path.dirname(target);
  const known = opts.knownDirs?.has(dir) ?? false;
  if (!known) {
    try {
      await ensureDirs(dir, opts.uid, opts.gid);
    } catch (err) {
      throw new WriteFailure(isNoSpace(err) ? 'no-space' : 'internal', `error ensuring directories: ${messageOf(err)}`);
    }
    if (opts.knownDirs && (await onLocalFilesystem(dir))) opts.knownDirs.add(dir);
  }
  const { dest, existing } = await destinationOf(target, known);
  if (existing?.isDirectory()) throw new WriteFailure('is-directory', `path is a directory: ${target}`);
  if (existing && !existing.isFile()) {
    await writeInPlace(dest, source, opts);
    return dest;
  }
  // Only a target that is its own destination (no symlink to elsewhere) is in the known directory.
  const local = known && dest === target;
  if (existing && (local ? onPseudoFilesystemSync(dest) : await onPseudoFilesystem(dest))) {
    await writeInPlace(dest, source, opts);
    return dest;
  }
  const head = local && Object.keys(opts.metadata).length === 0 ? await readSmall(source, SMALL_FILE_BYTES) : { chunks: [], complete: false };
  if (!head.complete) await writeViaTemp(dest, existing, source, opts, head.chunks);
  else {
    // Over an old file only: onto a new name every step is a few µs, cheaper on the loop than a hop.
    const native = existing ? await nativeWriter() : undefined;
    if (native) await writeSmallNative(native, dest, existing, head.chunks, opts);
    else await writeSmallViaTemp(dest, existing, head.chunks, opts);
  }
  return dest;
}

/** Where writing `target` lands: itself, or the file a symlink points to (as O_CREAT through a link does). */
async function destinationOf(target: string, local: boolean): Promise<{ dest: string; existing: Stats | undefined }> {
  let st: Stats | undefined;
  try {
    st = local ? lstatSync(target, { throwIfNoEntry: false }) : await lstat(target);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw new WriteFailure('internal', `error getting file info: ${messageOf(err)}`);
  }
  if (!st?.isSymbolicLink()) return { dest: target, existing: st };
  try {
    const real = await realpath(target);
    return { dest: real, existing: await stat(real) };
  } catch {
    // A dangling link: the file it names gets created.
    return { dest: path.resolve(path.dirname(target), await readlink(target)), existing: undefined };
  }
}

function onPseudoFilesystemSync(p: string): boolean {
  try {
    return PSEUDO_FILESYSTEMS.has(Number(statfsSync(p).type));
  } catch {
    return false;
  }
}

async function onPseudoFilesystem(p: string): Promise<boolean> {
  try {
    return PSEUDO_FILESYSTEMS.has(Number((await statfs(p)).type));
  } catch {
    return false;
  }
}

/**
 * Reads `source` until it ends or more than `limit` bytes have come; then it is paused, and what
 * came is returned with whether that was all. A failing source fails as copyInto would.
 */
function readSmall(source: Readable, limit: number): Promise<{ chunks: Buffer[]; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    // The error listener stays: the source may fail before copyInto listens (it opens the file first).
    const done = (complete: boolean, failure?: WriteFailure): void => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('close', onClose);
      if (failure) reject(failure);
      else resolve({ chunks, complete });
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (bytes > limit) {
        source.pause();
        done(false);
      }
    };
    const onEnd = (): void => done(true);
    const onError = (err: unknown): void => done(false, new WriteFailure('source', messageOf(err), err));
    const onClose = (): void => {
      if (!source.readableEnded) done(false, new WriteFailure('source', 'aborted'));
    };
    if (source.errored) return onError(source.errored);
    if (source.readableEnded) return onEnd();
    if (source.destroyed) return onClose();
    source.on('error', onError);
    source.on('close', onClose);
    source.on('end', onEnd);
    source.on('data', onData);
    source.resume();
  });
}

/** Tries at a temporary name: a name someone else took first (EEXIST) is drawn again, at random. */
const TEMP_TRIES = 3;

/** Whether try `attempt` at a temporary name failed only because the name was taken, and another may be drawn. */
const drawAgain = (err: unknown, attempt: number): boolean => errnoCode(err) === 'EEXIST' && attempt < TEMP_TRIES;

/** A fresh temporary file beside `dest`, created exclusively (O_EXCL: never a link someone left there). */
function openTempSync(dest: string, mode: number): { tmp: string; fd: number } {
  for (let attempt = 1; ; attempt++) {
    const tmp = tempPathFor(dest, attempt > 1);
    try {
      return { tmp, fd: openSync(tmp, 'wx', mode) };
    } catch (err) {
      if (!drawAgain(err, attempt)) throw tempOpenFailure(err);
    }
  }
}

async function openTemp(dest: string, mode: number): Promise<{ tmp: string; fh: FileHandle }> {
  for (let attempt = 1; ; attempt++) {
    const tmp = tempPathFor(dest, attempt > 1);
    try {
      return { tmp, fh: await open(tmp, 'wx', mode) };
    } catch (err) {
      if (!drawAgain(err, attempt)) throw tempOpenFailure(err);
    }
  }
}

/** Each step's failure, the same for the streamed and the synchronous writes. */
function tempOpenFailure(err: unknown): WriteFailure {
  if (isNoSpace(err)) return new WriteFailure('no-space', `not enough inodes available: ${messageOf(err)}`);
  return new WriteFailure('internal', `error opening file: ${messageOf(err)}`);
}

function ownershipFailure(err: unknown): WriteFailure {
  return new WriteFailure('internal', `error changing file ownership: ${messageOf(err)}`);
}

function writeFailure(err: unknown): WriteFailure {
  return isNoSpace(err) ? new WriteFailure('no-space', 'not enough disk space available') : new WriteFailure('internal', `error writing file: ${messageOf(err)}`);
}

function fileFull(): WriteFailure {
  return new WriteFailure('internal', 'error writing file: the file takes no more bytes');
}

function placingFailure(err: unknown): WriteFailure {
  return new WriteFailure(isNoSpace(err) ? 'no-space' : 'internal', `error moving the upload into place: ${messageOf(err)}`);
}

/**
 * writeViaTemp for bytes already in memory, with synchronous calls (see SMALL_FILE_BYTES); the
 * same steps, the same failures.
 */
async function writeSmallViaTemp(dest: string, existing: Stats | undefined, chunks: Buffer[], opts: AtomicWriteOptions): Promise<void> {
  const { tmp, fd } = openTempSync(dest, opts.createMode ?? 0o666);
  let renamed = false;
  try {
    try {
      fchownSync(fd, opts.uid, opts.gid);
      if (existing && opts.keepMode) fchmodSync(fd, existing.mode & 0o7777);
    } catch (err) {
      throw ownershipFailure(err);
    }
    const bytes = writeAllSync(fd, chunks);
    const metadataChanged = existing !== undefined && Object.keys(readMetadataSync(dest)).length > 0;
    const landing = announceLanding(dest);
    try {
      // Onto a new name the rename is a few µs, so it stays on the loop. Over an old file it frees
      // that file's inode and blocks, and ext4 (auto_da_alloc) starts writing the new one's bytes:
      // 100–200 µs of kernel time here, so it goes to the thread pool and runs beside the parsing
      // of the next parts (10,000 small files replaced: the wall ~15% shorter).
      if (existing) await rename(tmp, dest);
      else renameSync(tmp, dest);
    } catch (err) {
      landing.abandon();
      throw placingFailure(err);
    }
    renamed = true;
    await landing.landed(landingEvents(opts.reportAs, { existed: existing !== undefined, bytes, metadataChanged }));
  } finally {
    try {
      closeSync(fd);
    } catch {
      // as fh.close() above: nothing to do about it
    }
    if (!renamed) rmSync(tmp, { force: true });
  }
}

/** `SANDBOXD_NATIVE_WRITE=0` turns the addon's one-hop small write off: small files use the synchronous calls. */
export const NATIVE_WRITE_ENV = 'SANDBOXD_NATIVE_WRITE';

let nativeWriting: Promise<typeof NativeWriteSmallFile | undefined> | undefined;

/** The addon's writeSmallFile, loaded on first use; undefined when turned off or when the addon cannot load. */
function nativeWriter(): Promise<typeof NativeWriteSmallFile | undefined> {
  if (process.env[NATIVE_WRITE_ENV] === '0') return Promise.resolve(undefined);
  nativeWriting ??= spawnAddonExport('writeSmallFile').catch(() => undefined);
  return nativeWriting;
}

/**
 * writeSmallViaTemp in one thread-pool hop (the addon's writeSmallFile): open, fchown, fchmod, write,
 * rename and close run on a pool thread, beside the parsing of the next parts, and the loop pays one
 * completion instead of five syscalls, one of them a rename over an old file (100–200 µs on ext4).
 * The same steps, the same failures.
 */
async function writeSmallNative(write: typeof NativeWriteSmallFile, dest: string, existing: Stats | undefined, chunks: Buffer[], opts: AtomicWriteOptions): Promise<void> {
  const metadataChanged = existing !== undefined && Object.keys(readMetadataSync(dest)).length > 0;
  const mode = existing && opts.keepMode ? existing.mode & 0o7777 : -1;
  const landing = announceLanding(dest);
  for (let attempt = 1; ; attempt++) {
    const tmp = tempPathFor(dest, attempt > 1);
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => write(tmp, dest, opts.uid, opts.gid, mode, opts.createMode ?? 0o666, chunks, resolve));
    if (!err) break;
    if (err.syscall === 'open' && drawAgain(err, attempt)) continue;
    landing.abandon();
    switch (err.syscall) {
      case 'open':
        throw tempOpenFailure(err);
      case 'fchown':
      case 'fchmod':
        throw ownershipFailure(err);
      case 'write':
        throw err.code === 'EOF' ? fileFull() : writeFailure(err);
      default:
        throw placingFailure(err);
    }
  }
  await landing.landed(landingEvents(opts.reportAs, { existed: existing !== undefined, bytes: byteLength(chunks), metadataChanged }));
}

/** Writes all of `chunks` at the descriptor's offset; a short write is continued. */
function writeAllSync(fd: number, chunks: Buffer[]): number {
  let rest = chunks;
  let written = 0;
  while (rest.length > 0) {
    let n: number;
    try {
      n = writevSync(fd, rest);
    } catch (err) {
      throw writeFailure(err);
    }
    if (n === 0) throw fileFull();
    written += n;
    rest = unwritten(rest, n);
  }
  return written;
}

async function writeViaTemp(dest: string, existing: Stats | undefined, source: Readable, opts: AtomicWriteOptions, head: Buffer[] = []): Promise<void> {
  const { tmp, fh } = await openTemp(dest, opts.createMode ?? 0o666);
  let renamed = false;
  try {
    try {
      await fh.chown(opts.uid, opts.gid);
      // After chown, which clears set-id bits, so they survive an overwrite too.
      if (existing && opts.keepMode) await fh.chmod(existing.mode & 0o7777);
    } catch (err) {
      throw ownershipFailure(err);
    }
    const bytes = await copyInto(source, fh, head);
    // The temporary file is new (O_EXCL): with no metadata asked for there is nothing to clear.
    if (Object.keys(opts.metadata).length > 0) await writeMetadata(tmp, opts);
    const metadataChanged = Object.keys(opts.metadata).length > 0 || (existing !== undefined && Object.keys(await readMetadata(dest)).length > 0);
    const landing = announceLanding(dest);
    try {
      await rename(tmp, dest);
    } catch (err) {
      landing.abandon();
      throw placingFailure(err);
    }
    renamed = true;
    await landing.landed(landingEvents(opts.reportAs, { existed: existing !== undefined, bytes, metadataChanged }));
  } finally {
    await fh.close().catch(() => undefined);
    if (!renamed) await rm(tmp, { force: true }).catch(() => undefined);
  }
}

async function writeInPlace(dest: string, source: Readable, opts: AtomicWriteOptions): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(dest, 'w');
  } catch (err) {
    throw new WriteFailure(isNoSpace(err) ? 'no-space' : 'internal', `error opening file: ${messageOf(err)}`);
  }
  try {
    await copyInto(source, fh);
  } finally {
    await fh.close().catch(() => undefined);
  }
  // Device files refuse user xattrs with EPERM; that is "unsupported" here, not a failure.
  await writeMetadata(dest, opts, true);
}

/**
 * Copies source into the file with backpressure and tells a failing source from a failing disk.
 * Chunks are gathered into one writev(2) of at least MIN_WRITE bytes (or what is left at the end),
 * and while a write is in flight into the next one; the source is paused once WRITE_CHUNK bytes wait and resumed when they are written. Raw writes on the
 * descriptor rather than a write stream: for a small file the stream cost more than the write
 * (its construction, and an ERR_STREAM_ALREADY_FINISHED error built when its handle closes).
 * The source is never destroyed here: it may be the HTTP request, whose socket must survive to
 * carry the error answer (a 507 for a full disk). Settles only with no write in flight, so the
 * caller may close the handle then.
 */
function copyInto(source: Readable, fh: FileHandle, head: Buffer[] = []): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let waiting: Buffer[] = [...head];
    let waitingBytes = byteLength(head);
    let written = 0;
    let writing = false;
    let ended = false;
    let failure: WriteFailure | undefined;
    let settled = false;
    const settle = (): void => {
      if (settled || writing) return;
      settled = true;
      // The error listeners stay: a late 'error' must find one rather than crash the daemon.
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('close', onSourceClose);
      if (failure) reject(failure);
      else resolve(written);
    };
    const fail = (f: WriteFailure): void => {
      failure ??= f;
      settle();
    };
    const flush = (): void => {
      if (writing || failure) return;
      if (waitingBytes === 0 || (!ended && waitingBytes < MIN_WRITE)) {
        if (ended) settle();
        return;
      }
      const chunks = waiting;
      waiting = [];
      waitingBytes = 0;
      writing = true;
      writeAll(chunks);
    };
    // A short write (the disk filling up) is continued; the next write reports why it stopped.
    const writeAll = (chunks: Buffer[]): void => {
      writev(fh.fd, chunks, (err, n) => {
        if (err) {
          writing = false;
          return fail(writeFailure(err));
        }
        if (n === 0) {
          writing = false;
          return fail(fileFull());
        }
        written += n;
        const rest = unwritten(chunks, n);
        if (rest.length > 0 && !failure) return writeAll(rest);
        writing = false;
        if (failure) return settle();
        if (!ended) source.resume();
        flush();
      });
    };
    const onData = (chunk: Buffer): void => {
      waiting.push(chunk);
      waitingBytes += chunk.length;
      if (!writing) flush();
      else if (waitingBytes >= WRITE_CHUNK) source.pause();
    };
    const onEnd = (): void => {
      ended = true;
      flush();
    };
    const onSourceError = (err: unknown): void => fail(new WriteFailure('source', messageOf(err), err));
    const onSourceClose = (): void => {
      if (!source.readableEnded) fail(new WriteFailure('source', 'aborted'));
    };
    source.on('error', onSourceError);
    source.on('close', onSourceClose);
    // The source may have failed, or ended (and been destroyed after), while the target was being prepared.
    if (source.errored) return onSourceError(source.errored);
    if (source.readableEnded) return onEnd();
    if (source.destroyed) return onSourceClose();
    source.on('end', onEnd);
    source.on('data', onData);
    // readSmall paused the source after handing over its first chunks: a write resumes it when done,
    // and with too little for a write yet it is resumed now.
    if (head.length > 0) {
      flush();
      if (!writing) source.resume();
    }
  });
}

function byteLength(chunks: Buffer[]): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}

/** What is left of `chunks` after the first `n` bytes. */
function unwritten(chunks: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < chunks.length && n >= chunks[i]!.length) n -= chunks[i++]!.length;
  if (i === chunks.length) return [];
  return [chunks[i]!.subarray(n), ...chunks.slice(i + 1)];
}

async function writeMetadata(p: string, opts: AtomicWriteOptions, special = false): Promise<void> {
  try {
    await replaceMetadata(p, opts.metadata);
  } catch (err) {
    if (isXattrUnsupported(err) || (special && errnoCode(err) === 'EPERM')) {
      opts.onXattrUnsupported?.(err);
      return;
    }
    if (isNoSpace(err)) throw new WriteFailure('no-space', `not enough space for file metadata: ${messageOf(err)}`);
    throw new WriteFailure('internal', `error writing file metadata: ${messageOf(err)}`);
  }
}
