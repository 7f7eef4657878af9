import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { EventType } from '../../gen/filesystem/filesystem_pb.js';

/**
 * Uploads and compose write a temporary file beside the target and rename it into place. The
 * watchers must not show those temporary names, and report the result as envd shows the same
 * request (an upload: the create, chmod and write of its in-place write) rather than as a bare
 * rename. This module names the temporary files and tells the watchers about each landing.
 *
 * A landing is announced before the rename, so every watcher of the target's directory hides the
 * rename's own inotify event, whenever it arrives; after the rename the watchers are handed the
 * events to report instead, and the writer waits until each has queued them behind what it saw
 * before. So a client that polls a watcher right after its upload was answered finds the upload's
 * events, as it does with envd, where inotify queues them during the write itself.
 */

const TEMP_PREFIX = '.sandboxd-tmp-';
const TEMP_PATTERN = /^\.sandboxd-tmp-[0-9a-f]{16}$/;

// A random half per process and a counter: a name costs no call into OpenSSL (randomBytes per name
// was 2–12 µs, the largest userland item of a small file's upload after the writes themselves).
let tempSeed = randomBytes(4).toString('hex');
let tempCount = 0;

/**
 * A fresh temporary path in the same directory as `target` (so a rename is atomic). `unguessable`
 * draws a wholly random name: for a retry after EEXIST, in case someone made the next name first.
 */
export function tempPathFor(target: string, unguessable = false): string {
  if (unguessable || tempCount > 0xffffffff) {
    tempSeed = randomBytes(4).toString('hex');
    tempCount = 0;
  }
  const name = TEMP_PREFIX + tempSeed + (tempCount++).toString(16).padStart(8, '0');
  return path.join(path.dirname(target), unguessable ? TEMP_PREFIX + randomBytes(8).toString('hex') : name);
}

/** True for the names `tempPathFor` hands out. */
export function isDaemonTempName(name: string): boolean {
  return TEMP_PATTERN.test(path.basename(name));
}

/** A watcher's side of landings. */
export interface LandingObserver {
  /** Whether it watches `target`'s directory; if so, it hides the next rename event onto `target`. */
  expect(target: string): boolean;
  /** The landing did not happen after all (the rename failed): stop hiding. */
  abandon(target: string): void;
  /** Report `events` for `target`; resolves once they are queued for the client. */
  landed(target: string, events: readonly EventType[]): Promise<void>;
}

const observers = new Set<LandingObserver>();

/** Registers a watcher; call the returned function when it closes. */
export function observeLandings(observer: LandingObserver): () => void {
  observers.add(observer);
  return () => observers.delete(observer);
}

export interface Landing {
  /** After a successful rename: the watchers report `events`; resolves when all have queued them. */
  landed(events: readonly EventType[]): Promise<void>;
  /** After a failed rename. */
  abandon(): void;
}

/** Call right before renaming a finished temporary file onto `target`. */
export function announceLanding(target: string): Landing {
  const watching = [...observers].filter((o) => o.expect(target));
  return {
    landed: async (events) => {
      await Promise.all(watching.map((o) => o.landed(target, events)));
    },
    abandon: () => {
      for (const o of watching) o.abandon(target);
    },
  };
}
