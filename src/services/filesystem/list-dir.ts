import { lstat as lstatCb, lstatSync, type Stats } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { ListDirResponseSchema, type EntryInfo, type ListDirRequest, type ListDirResponse } from '../../gen/filesystem/filesystem_pb.js';
import { buildEntryInfo, resolveLink } from '../../system/entry.js';
import type { OwnerNames } from '../../system/users.js';
import { readMetadata, readMetadataSync, onLocalFilesystem } from '../../system/xattrs.js';
import type { RpcCall } from '../context.js';
import type { FilesystemContext } from './context.js';
import { errnoCode, wrapped } from './errors.js';
import { currentMountPoints } from './mounts.js';

/** Entries read at once through the thread pool: enough to overlap syscalls without flooding it. */
const PARALLEL_STATS = 32;

/**
 * Entries read synchronously between two turns of the event loop, and the time above which a
 * batch is taken to have waited on a slow disk: the rest of that directory then goes through the
 * thread pool. A cached lstat and listxattr take a few microseconds together (a batch well under
 * a millisecond), a trip through the thread pool costs the event loop several times that.
 */
export interface SyncTuning {
  batch: number;
  slowBatchMs: number;
}
const SYNC_TUNING: SyncTuning = { batch: 64, slowBatchMs: 10 };

/**
 * Lists a directory `depth` levels deep (0 means 1), as envd does: a symlink given as the path is
 * followed, but links inside the tree are listed, not descended into. Entries come in Go's WalkDir
 * order (pre-order, names by byte order) with paths under the path as requested.
 */
export async function listDir(fs: FilesystemContext, req: ListDirRequest, ctx: RpcCall, tuning = SYNC_TUNING): Promise<ListDirResponse> {
  const depth = req.depth === 0 ? 1 : req.depth;
  const { path: dirPath } = fs.resolve(req.path, ctx);
  let resolved: string;
  try {
    resolved = await realpath(dirPath);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw wrapped(Code.NotFound, 'directory not found', err);
    if (code === 'ELOOP') throw new ConnectError(`cyclic symlink or chain >255 links at "${dirPath}"`, Code.FailedPrecondition);
    throw wrapped(Code.Internal, 'error resolving symlink', err);
  }
  const st = await stat(resolved).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') throw wrapped(Code.NotFound, 'directory not found', err);
    throw wrapped(Code.Internal, 'error getting file info', err);
  });
  if (!st.isDirectory()) throw new ConnectError(`path is not a directory: ${dirPath}`, Code.InvalidArgument);

  const entries: EntryInfo[] = [];
  try {
    await walk({ path: dirPath, real: resolved, dev: st.dev }, depth, { names: fs.deps.users.names(), mounts: await currentMountPoints(), tuning, out: entries });
  } catch (err) {
    throw wrapped(Code.Internal, `error reading directory ${dirPath}`, err);
  }
  return create(ListDirResponseSchema, { entries });
}

/**
 * Go orders directory entries by the bytes of their names. UTF-16 order (JavaScript's own) is the
 * same as UTF-8 byte order except around surrogate pairs, so only names with those need the bytes.
 */
function sortByBytes(names: string[]): string[] {
  if (!names.some((n) => SURROGATE.test(n))) return names.sort();
  const keyed = names.map((name) => ({ name, bytes: Buffer.from(name) }));
  keyed.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  return keyed.map((k) => k.name);
}
const SURROGATE = /[\uD800-\uDFFF]/;

/** lstat through the callback API: fs/promises' lstat costs several times more per call. */
function lstatQuick(p: string): Promise<Stats> {
  return new Promise((resolve, reject) => lstatCb(p, (err, st) => (err ? reject(err) : resolve(st))));
}

/** A directory being listed: its path as requested, its path with symlinks resolved, its device. */
interface Dir {
  path: string;
  real: string;
  dev: number;
}

interface Listing {
  names: OwnerNames;
  /** Mount points; undefined when unknown, and then nothing is read synchronously. */
  mounts: Set<string> | undefined;
  tuning: SyncTuning;
  out: EntryInfo[];
}

interface Listed {
  p: string;
  st: Stats;
  info: EntryInfo;
}

type Pending = Listed | undefined | Promise<Listed | undefined>;

/**
 * Lists `dir` into `listing.out`, descending `levelsLeft - 1` more levels.
 *
 * On a local filesystem (statfs) the entries are read synchronously in batches (lstat, then the
 * xattrs), except mount points, whose lstat is answered by the filesystem mounted there (maybe a
 * FUSE server), and the targets of symlinks, which may be anywhere: those go through the thread
 * pool, as does everything on other filesystems.
 */
async function walk(dir: Dir, levelsLeft: number, listing: Listing): Promise<void> {
  const [children, local] = await Promise.all([readdir(dir.path), onLocalFilesystem(dir.path)]);
  const names = sortByBytes(children);
  const prefix = dir.path.endsWith('/') ? dir.path : `${dir.path}/`;
  const realPrefix = dir.real.endsWith('/') ? dir.real : `${dir.real}/`;
  const pending = new Array<Pending>(names.length);
  let next = 0;
  const mounts = listing.mounts;
  if (local && mounts) {
    while (next < names.length) {
      const end = Math.min(next + listing.tuning.batch, names.length);
      const started = performance.now();
      for (; next < end; next++) {
        const name = names[next]!;
        pending[next] = settled(mounts.has(realPrefix + name) ? entryAsync(prefix + name, listing) : entrySync(prefix + name, dir, listing));
      }
      if (next === names.length) break;
      if (performance.now() - started > listing.tuning.slowBatchMs) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  if (next < names.length) {
    const rest = await mapLimit(names.slice(next), PARALLEL_STATS, (name) => entryAsync(prefix + name, listing));
    for (let i = 0; i < rest.length; i++) pending[next + i] = rest[i];
  }
  for (const item of await Promise.all(pending)) {
    if (!item) continue;
    listing.out.push(item.info);
    if (levelsLeft > 1 && item.st.isDirectory()) {
      const name = item.info.name;
      await walk({ path: item.p, real: realPrefix + name, dev: item.st.dev }, levelsLeft - 1, listing);
    }
  }
}

/**
 * Marks a pending entry's failure as handled at once: it is awaited (and its error raised) only
 * once the directory is done, and a later entry may fail first.
 */
function settled(entry: Pending): Pending {
  if (entry instanceof Promise) entry.catch(() => undefined);
  return entry;
}

/** One entry read synchronously (a symlink's target still through the thread pool). */
function entrySync(p: string, dir: Dir, listing: Listing): Pending {
  let st: Stats;
  try {
    st = lstatSync(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined; // removed while we listed
    throw err;
  }
  if (st.isSymbolicLink()) return linkEntry(p, st, listing);
  if (st.dev !== dir.dev) {
    // Another filesystem after all (mounted since the mount table was read, a btrfs subvolume).
    return readMetadata(p).then((metadata) => ({ p, st, info: buildEntryInfo(p, st, listing.names, undefined, metadata) }));
  }
  return { p, st, info: buildEntryInfo(p, st, listing.names, undefined, readMetadataSync(p)) };
}

/** One entry read through the thread pool. */
async function entryAsync(p: string, listing: Listing): Promise<Listed | undefined> {
  let st: Stats;
  try {
    st = await lstatQuick(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined; // removed while we listed
    throw err;
  }
  if (st.isSymbolicLink()) return linkEntry(p, st, listing);
  return { p, st, info: buildEntryInfo(p, st, listing.names, undefined, await readMetadata(p)) };
}

async function linkEntry(p: string, st: Stats, listing: Listing): Promise<Listed> {
  const [link, metadata] = await Promise.all([resolveLink(p), readMetadata(p)]);
  return { p, st, info: buildEntryInfo(p, st, listing.names, link, metadata) };
}

/** Maps items with at most `limit` promises pending, keeping the input order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
