import { accessSync, constants } from 'node:fs';

/** The first of `candidates` the daemon may execute; undefined when none is installed. */
export function firstExecutable(candidates: readonly string[]): string | undefined {
  for (const p of candidates) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // try the next one
    }
  }
  return undefined;
}
