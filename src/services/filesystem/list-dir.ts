import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import { ListDirResponseSchema, type EntryInfo, type ListDirRequest, type ListDirResponse } from '../../gen/filesystem/filesystem_pb.js';
import { entryInfo } from '../../system/entry.js';
import type { UserDb } from '../../system/users.js';
import type { FilesystemContext } from './context.js';
import { errnoCode, wrapped } from './errors.js';

/** Entries examined at once per directory: enough to overlap syscalls without flooding the thread pool. */
const PARALLEL_STATS = 32;

/**
 * Lists a directory `depth` levels deep (0 means 1), as envd does: a symlink given as the path is
 * followed, but links inside the tree are listed, not descended into. Entries come in Go's WalkDir
 * order (pre-order, names by byte order) with paths under the path as requested.
 */
export async function listDir(fs: FilesystemContext, req: ListDirRequest, ctx: HandlerContext): Promise<ListDirResponse> {
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
    await walk(dirPath, depth, fs.deps.users, entries);
  } catch (err) {
    throw wrapped(Code.Internal, `error reading directory ${dirPath}`, err);
  }
  return create(ListDirResponseSchema, { entries });
}

/** Go orders directory entries by the bytes of their names. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function walk(dir: string, levelsLeft: number, users: UserDb, out: EntryInfo[]): Promise<void> {
  const names = (await readdir(dir)).sort(byteOrder);
  const infos = await mapLimit(names, PARALLEL_STATS, async (name) => {
    const p = path.join(dir, name);
    try {
      const st = await lstat(p);
      return { p, st, info: await entryInfo(p, users, { lstatResult: st }) };
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined; // removed while we listed
      throw err;
    }
  });
  for (const item of infos) {
    if (!item) continue;
    out.push(item.info);
    if (levelsLeft > 1 && item.st.isDirectory()) await walk(item.p, levelsLeft - 1, users, out);
  }
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
