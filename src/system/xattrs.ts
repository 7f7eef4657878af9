import { getAttribute, listAttributes, removeAttribute, setAttribute } from 'fs-xattr';

/** Namespace under which file metadata lives, as envd stores it. */
export const METADATA_PREFIX = 'user.e2b.';

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

/** Replaces every `user.e2b.*` attribute of the file with the given set. */
export async function replaceMetadata(path: string, metadata: Record<string, string>): Promise<void> {
  let names: string[] = [];
  try {
    names = await listAttributes(path);
  } catch {
    names = [];
  }
  for (const name of names) {
    if (name.startsWith(METADATA_PREFIX) && !(name.slice(METADATA_PREFIX.length) in metadata)) {
      await removeAttribute(path, name);
    }
  }
  for (const [key, value] of Object.entries(metadata)) {
    await setAttribute(path, METADATA_PREFIX + key, value);
  }
}
