import { chown, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from './errors.js';

/** A path component that should be a directory is something else. */
export class NotADirectoryError extends Error {}

/**
 * Makes sure `dir` and all its ancestors exist, as envd does: each missing directory is created
 * with mode 0755 and owned by uid:gid; directories that already exist are left untouched.
 * Throws NotADirectoryError when a component exists but is not a directory.
 */
export async function ensureDirs(dir: string, uid: number, gid: number): Promise<void> {
  const missing: string[] = [];
  for (let p = path.resolve(dir); ; p = path.dirname(p)) {
    try {
      const st = await stat(p);
      if (!st.isDirectory()) throw new NotADirectoryError(`path is a file: ${p}`);
      break;
    } catch (err) {
      const code = errnoCode(err);
      // ENOTDIR: an ancestor is a file; walking up finds it and reports it by name.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
    if (p === '/') break;
    missing.push(p);
  }
  for (const p of missing.reverse()) {
    try {
      await mkdir(p, 0o755);
    } catch (err) {
      // Someone else made it in the meantime; it still gets our owner, as envd does.
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    await chown(p, uid, gid);
  }
}
