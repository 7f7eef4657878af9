import { statfsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { getAttribute, getAttributeSync, listAttributes, listAttributesSync, removeAttribute, setAttribute } from 'fs-xattr';

/** Namespace under which file metadata lives, as envd stores it. */
export const METADATA_PREFIX = 'user.e2b.';

/** Longest key: Linux caps a whole xattr name (prefix included) at 255 bytes. */
export const MAX_METADATA_KEY_BYTES = 255 - METADATA_PREFIX.length;

/** Budget for all metadata of one file (names with prefix plus values): ext4 keeps an inode's xattrs in one 4 KiB block. */
export const MAX_METADATA_TOTAL_BYTES = 4096;

/** True when the filesystem has no user xattrs (proc, sysfs, some FUSE mounts). */
export function isXattrUnsupported(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOTSUP' || code === 'EOPNOTSUPP';
}

function nonPrintable(label: string, s: string): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) {
      return `metadata ${label} contains non-printable-ASCII byte 0x${c.toString(16).padStart(2, '0')} at offset ${i}`;
    }
  }
  return undefined;
}

/**
 * Why envd would refuse this metadata set (printable ASCII keys and values, key and total size
 * limits), or undefined when it is acceptable.
 */
export function metadataProblem(metadata: Record<string, string>): string | undefined {
  let total = 0;
  for (const [key, value] of Object.entries(metadata)) {
    if (key === '') return 'metadata key must not be empty';
    const problem = nonPrintable('key', key) ?? nonPrintable(`value for key ${JSON.stringify(key)}`, value);
    if (problem) return problem;
    if (key.length > MAX_METADATA_KEY_BYTES) return `metadata key ${JSON.stringify(key)} exceeds ${MAX_METADATA_KEY_BYTES} bytes`;
    total += METADATA_PREFIX.length + key.length + value.length;
  }
  if (total > MAX_METADATA_TOTAL_BYTES) return `total metadata size ${total} exceeds ${MAX_METADATA_TOTAL_BYTES} bytes`;
  return undefined;
}

/** The file's `user.e2b.*` attributes with the prefix stripped; empty where xattrs are unsupported. */
export async function readMetadata(path: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let names: string[];
  try {
    names = await listAttributes(path);
  } catch {
    return out;
  }
  for (const name of names) {
    if (!name.startsWith(METADATA_PREFIX)) continue;
    try {
      addValue(out, name, await getAttribute(path, name));
    } catch {
      // removed between list and get
    }
  }
  return out;
}

/**
 * readMetadata without the thread pool, for files on a local filesystem (see `onLocalFilesystem`):
 * an async call costs the event loop several times what the syscall does.
 */
export function readMetadataSync(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  let names: string[];
  try {
    names = listAttributesSync(path);
  } catch {
    return out;
  }
  for (const name of names) {
    if (!name.startsWith(METADATA_PREFIX)) continue;
    try {
      addValue(out, name, getAttributeSync(path, name));
    } catch {
      // removed between list and get
    }
  }
  return out;
}

function addValue(out: Record<string, string>, name: string, raw: Buffer): void {
  const value = raw.toString('utf8');
  if (value.includes('\uFFFD')) return; // not UTF-8: skipped, as envd does
  out[name.slice(METADATA_PREFIX.length)] = value;
}

/**
 * statfs magic numbers of filesystems the kernel answers itself, from memory or a local disk
 * (disk filesystems, memory filesystems, overlayfs, proc/sysfs/cgroup): an lstat or an xattr read
 * there never waits on a network or a FUSE server.
 */
const LOCAL_FILESYSTEMS = new Set([
  0xef53, // ext2/3/4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0xf2f52010, // f2fs
  0x2fc12fc1, // zfs
  0x01021994, // tmpfs, devtmpfs
  0x858458f6, // ramfs
  0x794c7630, // overlayfs
  0x73717368, // squashfs
  0xe0f5e1e2, // erofs
  0x9fa0, // proc
  0x62656572, // sysfs
  0x27e0eb, // cgroup
  0x63677270, // cgroup2
]);

/** onLocalFilesystem, synchronously (one statfs). */
export function isLocalFilesystemSync(dir: string): boolean {
  try {
    return LOCAL_FILESYSTEMS.has(statfsSync(dir).type);
  } catch {
    return false;
  }
}

/** True when `dir` is on a local filesystem, where a file's stat and xattrs may be read synchronously. */
export async function onLocalFilesystem(dir: string): Promise<boolean> {
  try {
    return LOCAL_FILESYSTEMS.has((await statfs(dir)).type);
  } catch {
    return false;
  }
}

/**
 * Replaces every `user.e2b.*` attribute of the file with the given set (an empty set clears them);
 * attributes outside the namespace are kept. Errors (ENOTSUP, ENOSPC, ...) are thrown as they come.
 */
export async function replaceMetadata(path: string, metadata: Record<string, string>): Promise<void> {
  const names = await listAttributes(path);
  for (const name of names) {
    if (name.startsWith(METADATA_PREFIX) && !Object.hasOwn(metadata, name.slice(METADATA_PREFIX.length))) {
      await removeAttribute(path, name);
    }
  }
  for (const [key, value] of Object.entries(metadata)) {
    await setAttribute(path, METADATA_PREFIX + key, value);
  }
}
