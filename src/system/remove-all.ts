import { constants } from 'node:fs';
import { open, readdir, rm, rmdir, unlink, type FileHandle } from 'node:fs/promises';

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Removes `path` and everything under it; a path already gone is fine (Go's os.RemoveAll, which envd
 * uses). fs.rm works on whole paths and fails with ENAMETOOLONG once a tree is deeper than PATH_MAX;
 * such a tree is removed by a walk relative to open directories instead.
 */
export async function removeAll(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
    return;
  } catch (err) {
    if (errnoCode(err) !== 'ENAMETOOLONG') throw err;
  }
  await removeRelative(path);
}

/** One directory on the way down: its name in its parent, and the subdirectories still to remove. */
interface Level {
  name: string;
  subdirs: string[];
}

/**
 * Depth-first removal where every path is short: Node has no openat/unlinkat, but
 * `/proc/self/fd/<fd>/<name>` resolves `name` in the directory `fd` holds, which is the same thing.
 * One directory is held open at a time (going up is `<fd>/..`), so depth costs no descriptors.
 */
async function removeRelative(root: string): Promise<void> {
  let dir: FileHandle = await open(root, DIR_FLAGS);
  const at = (name: string) => `/proc/self/fd/${dir.fd}/${name}`;
  const stack: Level[] = [];
  let level: Level = { name: '', subdirs: await clearFiles(at('')) };
  try {
    for (;;) {
      const next = level.subdirs.pop();
      if (next !== undefined) {
        let child: FileHandle;
        try {
          child = await open(at(next), DIR_FLAGS);
        } catch (err) {
          const code = errnoCode(err);
          if (code === 'ENOENT') continue;
          // Replaced by a file or a symlink since it was listed.
          if (code === 'ELOOP' || code === 'ENOTDIR') {
            await unlink(at(next)).catch(ignoreMissing);
            continue;
          }
          throw err;
        }
        await dir.close();
        dir = child;
        stack.push(level);
        level = { name: next, subdirs: await clearFiles(at('')) };
        continue;
      }
      const parent = stack.pop();
      if (!parent) break;
      const up = await open(at('..'), DIR_FLAGS);
      await dir.close();
      dir = up;
      await rmdir(at(level.name)).catch(ignoreMissing);
      level = parent;
    }
  } finally {
    await dir.close();
  }
  await rmdir(root).catch(ignoreMissing);
}

/** Unlinks every entry of the directory at `dirPath` that is not a directory; returns the directories. */
async function clearFiles(dirPath: string): Promise<string[]> {
  const subdirs: string[] = [];
  for (const entry of await readdir(dirPath, { withFileTypes: true })) {
    if (entry.isDirectory()) subdirs.push(entry.name);
    else await unlink(`${dirPath}/${entry.name}`).catch(ignoreMissing);
  }
  return subdirs;
}

function ignoreMissing(err: unknown): void {
  if (errnoCode(err) !== 'ENOENT') throw err;
}
