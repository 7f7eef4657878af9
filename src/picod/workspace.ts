import { mkdirSync, realpathSync } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';

/** A path that would leave the workspace (PicoD answers these with 400). */
export class WorkspaceError extends Error {}

const escapes = (rel: string): boolean => rel === '..' || rel.startsWith('../') || path.isAbsolute(rel);

/**
 * The directory every PicoD path is confined to (`--workspace`), with PicoD's sanitizePath rules:
 * a path is cleaned, an absolute one is taken relative to the workspace, `..` that climbs out is
 * refused, and an existing path is resolved through its symlinks and refused if that leaves the
 * workspace. Stricter than PicoD in one respect: for a path that does not exist yet, its deepest
 * existing ancestor must resolve inside too (PicoD checks that only for working_dir), so
 * `link-to-etc/new-file` cannot write outside.
 */
export class Workspace {
  /** The workspace with its symlinks resolved: every confined path starts with it. */
  readonly root: string;

  /** Creates the directory when missing, as PicoD's setWorkspace does. */
  constructor(dir: string) {
    const abs = path.resolve(dir);
    mkdirSync(abs, { recursive: true, mode: 0o755 });
    this.root = realpathSync(abs);
  }

  private inside(p: string): boolean {
    return !escapes(path.relative(this.root, p));
  }

  /** The absolute path `input` names inside the workspace (symlinks resolved when it exists). */
  async resolve(input: string): Promise<string> {
    if (input.includes('\0')) throw new WorkspaceError(`access denied: path '${input}' contains a NUL byte`);
    let clean = path.posix.normalize(input === '' ? '.' : input);
    if (path.isAbsolute(clean)) clean = clean.replace(/^\/+/, '') || '.';
    const candidate = path.join(this.root, clean);
    const rel = path.relative(this.root, candidate);
    if (escapes(rel)) throw new WorkspaceError(`access denied: path '${input}' escapes workspace jail (relative path traversal: ${rel})`);

    try {
      const real = await realpath(candidate);
      if (!this.inside(real)) throw new WorkspaceError(`access denied: resolved path '${real}' (from '${input}') escapes workspace jail via symlink`);
      return real;
    } catch (err) {
      if (err instanceof WorkspaceError) throw err;
    }
    // Missing (or a dangling link): whatever exists of it must resolve inside the workspace.
    for (let p = candidate; p !== this.root && this.inside(p); p = path.dirname(p)) {
      let exists = true;
      try {
        await lstat(p);
      } catch {
        exists = false;
      }
      if (!exists) continue;
      let real: string;
      try {
        real = await realpath(p);
      } catch (err) {
        throw new WorkspaceError(`access denied: path '${input}' goes through '${path.relative(this.root, p)}', which cannot be resolved: ${(err as Error).message}`);
      }
      if (!this.inside(real)) throw new WorkspaceError(`access denied: path '${input}' escapes workspace jail via symlink`);
      break;
    }
    return candidate;
  }

  /** `p` (inside the workspace) relative to it, as PicoD reports upload paths. */
  relative(p: string): string {
    return path.relative(this.root, p) || '.';
  }
}
