import { lstat, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { EntryInfoSchema, FileType, type EntryInfo } from '../gen/filesystem/filesystem_pb.js';
import type { UserDb } from './users.js';
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

/**
 * EntryInfo for a path, from lstat as envd builds it: a symlink takes its type and permission bits
 * from its resolved target, and `symlinkTarget` is that resolved path (the link itself when broken).
 * Throws the fs error (ENOENT etc.) for the caller to map.
 */
export async function entryInfo(p: string, users: UserDb, opts: { metadata?: boolean; lstatResult?: Stats } = {}): Promise<EntryInfo> {
  const st = opts.lstatResult ?? (await lstat(p));
  let type = typeOf(st);
  let mode = st.mode & 0o777;
  let symlinkTarget: string | undefined;
  if (st.isSymbolicLink()) {
    try {
      symlinkTarget = await realpath(p);
      const target = await stat(symlinkTarget);
      type = typeOf(target);
      mode = target.mode & 0o777;
    } catch {
      symlinkTarget = p;
      type = FileType.UNSPECIFIED;
      mode = 0;
    }
  }
  const entry = create(EntryInfoSchema, {
    name: path.basename(p) || '/',
    type,
    path: p,
    size: BigInt(st.size),
    mode,
    permissions: permissionString(st.mode),
    owner: users.userName(st.uid),
    group: users.groupName(st.gid),
    modifiedTime: st.mtimeMs > 0 ? timestampFromMs(Math.floor(st.mtimeMs)) : undefined,
    symlinkTarget,
  });
  if (opts.metadata !== false) {
    const md = await readMetadata(p);
    for (const [k, v] of Object.entries(md)) entry.metadata[k] = v;
  }
  return entry;
}
