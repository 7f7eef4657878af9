import { randomBytes } from 'node:crypto';
import path from 'node:path';

/**
 * Uploads and compose write a temporary file beside the target and rename it into place. The
 * watchers must not show those temporary names, and should report the result as envd's in-place
 * write shows it (create for a new file, then write) rather than as a bare rename. This module
 * names the temporary files and remembers, for a few seconds, which paths are being replaced.
 */

const TEMP_PREFIX = '.sandboxd-tmp-';
const TEMP_PATTERN = /^\.sandboxd-tmp-[0-9a-f]{16}$/;
const HINT_TTL_MS = 10_000;

/** A fresh temporary path in the same directory as `target` (so a rename is atomic). */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), TEMP_PREFIX + randomBytes(8).toString('hex'));
}

/** True for the names `tempPathFor` hands out. */
export function isDaemonTempName(name: string): boolean {
  return TEMP_PATTERN.test(path.basename(name));
}

export interface ReplaceHint {
  /** The target existed before the rename (then watchers report a write, not a create). */
  existed: boolean;
}

const hints = new Map<string, ReplaceHint & { expires: number }>();

/** Call right before renaming a finished temporary file onto `target`. */
export function announceReplace(target: string, existed: boolean): void {
  const now = Date.now();
  for (const [p, h] of hints) if (h.expires < now) hints.delete(p);
  hints.set(target, { existed, expires: now + HINT_TTL_MS });
}

/** The pending replacement of `target`, if the daemon announced one recently. */
export function replaceHint(target: string): ReplaceHint | undefined {
  const h = hints.get(target);
  if (!h) return undefined;
  if (h.expires < Date.now()) {
    hints.delete(target);
    return undefined;
  }
  return { existed: h.existed };
}
