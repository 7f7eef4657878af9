import { lstat, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { EntryInfoSchema, FileType, type EntryInfo } from '../gen/filesystem/filesystem_pb.js';
import type { OwnerNames } from './users.js';
import { readMetadata } from './xattrs.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFBLK = 0o060000;
const S_IFCHR = 0o020000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;

/** Go's `FileMode.String()` for a POSIX mode: type letters (or '-') then rwxrwxrwx, as envd reports. */
export function permissionString(mode: number): string {
  const fmt = mode & S_IFMT;
  let letters = '';
  if (fmt === S_IFDIR) letters += 'd';
  if (fmt === S_IFLNK) letters += 'L';
  if (fmt === S_IFBLK || fmt === S_IFCHR) letters += 'D';
  if (fmt === S_IFIFO) letters += 'p';
  if (fmt === S_IFSOCK) letters += 'S';
  if (mode & 0o4000) letters += 'u';
  if (mode & 0o2000) letters += 'g';
  if (fmt === S_IFCHR) letters += 'c';
  if (mode & 0o1000) letters += 't';
  const rwx = 'rwxrwxrwx';
  let perms = '';
  for (let i = 0; i < 9; i++) perms += mode & (1 << (8 - i)) ? rwx[i] : '-';
  return (letters || '-') + perms;
}

function typeOf(st: Stats): FileType {
  if (st.isFile()) return FileType.FILE;
  if (st.isDirectory()) return FileType.DIRECTORY;
  return FileType.UNSPECIFIED;
}

/** Where a symlink leads: its resolved path and the target's stat; undefined for a broken link. */
export interface LinkTarget {
  path: string;
  stat: Stats;
}

/** Resolves a symlink to its final target; undefined when it is broken or cyclic. */
export async function resolveLink(p: string): Promise<LinkTarget | undefined> {
  try {
    const resolved = await realpath(p);
    return { path: resolved, stat: await stat(resolved) };
  } catch {
    return undefined;
  }
}

/**
 * EntryInfo from what was already read about `p`: its lstat, for a symlink where it leads (the
 * link's type and permission bits are the target's; a broken link reports itself as the target,
 * with no type and mode 0), and its metadata.
 */
export function buildEntryInfo(
  p: string,
  st: Stats,
  names: OwnerNames,
  link: LinkTarget | undefined,
  metadata: Record<string, string> | undefined,
): EntryInfo {
  let type = typeOf(st);
  let mode = st.mode & 0o777;
  let symlinkTarget: string | undefined;
  if (st.isSymbolicLink()) {
    if (link) {
      symlinkTarget = link.path;
      type = typeOf(link.stat);
      mode = link.stat.mode & 0o777;
    } else {
      symlinkTarget = p;
      type = FileType.UNSPECIFIED;
      mode = 0;
    }
  }
  return create(EntryInfoSchema, {
    name: path.basename(p) || '/',
    type,
    path: p,
    size: BigInt(st.size),
    mode,
    permissions: permissionString(st.mode),
    owner: names.userName(st.uid),
    group: names.groupName(st.gid),
    modifiedTime: st.mtimeMs > 0 ? timestampFromMs(Math.floor(st.mtimeMs)) : undefined,
    symlinkTarget,
    metadata,
  });
}

/**
 * EntryInfo for a path, from lstat as envd builds it: a symlink takes its type and permission bits
 * from its resolved target, and `symlinkTarget` is that resolved path (the link itself when broken).
 * Throws the fs error (ENOENT etc.) for the caller to map.
 */
export async function entryInfo(p: string, users: OwnerNames, opts: { metadata?: boolean; lstatResult?: Stats } = {}): Promise<EntryInfo> {
  const st = opts.lstatResult ?? (await lstat(p));
  const link = st.isSymbolicLink() ? await resolveLink(p) : undefined;
  const metadata = opts.metadata !== false ? await readMetadata(p) : undefined;
  return buildEntryInfo(p, st, users, link, metadata);
}
