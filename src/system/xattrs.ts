import { getAttribute, listAttributes, removeAttribute, setAttribute } from 'fs-xattr';

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
      const value = (await getAttribute(path, name)).toString('utf8');
      if (value.includes('\uFFFD')) continue; // not UTF-8: skipped, as envd does
      out[name.slice(METADATA_PREFIX.length)] = value;
    } catch {
      // removed between list and get
    }
  }
  return out;
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
