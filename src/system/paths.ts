import path from 'node:path';
import type { User } from './users.js';

export class PathError extends Error {}

/**
 * Resolves a client path as envd does: an empty path means the default workdir (else home),
 * `~` and `~/x` are the user's home, relative paths are relative to the user's home.
 * Symlinks are not followed here.
 */
export function resolvePath(input: string, user: Pick<User, 'home' | 'name'>, defaultWorkdir?: string): string {
  let p = input;
  if (p === '' && defaultWorkdir) p = defaultWorkdir;
  if (p.includes('\0')) throw new PathError(`path '${input}' contains invalid characters`);
  if (p.startsWith('~')) {
    if (p === '~' || p.startsWith('~/')) {
      p = path.join(user.home, p.slice(1));
    } else {
      throw new PathError(`failed to expand path '${input}' for user '${user.name}': cannot expand user-specific home dir`);
    }
  }
  if (path.isAbsolute(p)) return path.normalize(p).replace(/(.)\/+$/, '$1');
  return path.resolve(user.home, p);
}
