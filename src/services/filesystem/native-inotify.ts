import type { InotifyHandle } from 'sandboxd-spawn';
import type { Logger } from '../../log.js';
import { spawnAddonExport } from '../../system/spawn-addon.js';

export type { InotifyHandle };

/** inotify's event bits (linux/inotify.h), as the addon hands them over. */
export const IN = {
  MODIFY: 0x2,
  ATTRIB: 0x4,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  CREATE: 0x100,
  DELETE: 0x200,
  DELETE_SELF: 0x400,
  MOVE_SELF: 0x800,
  Q_OVERFLOW: 0x4000,
  IGNORED: 0x8000,
  ISDIR: 0x40000000,
} as const;

/** The addon's inotify reader (native/spawn/src/inotify.c). */
export interface NativeInotify {
  open(onEvents: (events: (number | string)[]) => void): InotifyHandle;
  add(handle: InotifyHandle, dir: string): number;
  remove(handle: InotifyHandle, wd: number): void;
  close(handle: InotifyHandle): void;
}

/** `SANDBOXD_NATIVE_WATCH=0` turns the addon's reader off: watchers use Node's fs.watch, as before it. */
export const NATIVE_WATCH_ENV = 'SANDBOXD_NATIVE_WATCH';

let loading: Promise<NativeInotify | undefined> | undefined;
let toldOff = false;

/**
 * The addon's inotify reader, loaded on the first watch; undefined when turned off (read at each
 * watch) or when the addon cannot load (logged once): then the watcher uses fs.watch.
 */
export function nativeInotify(logger?: Logger): Promise<NativeInotify | undefined> {
  if (process.env[NATIVE_WATCH_ENV] === '0') {
    if (!toldOff) logger?.info(`${NATIVE_WATCH_ENV}=0: directories are watched through Node's fs.watch`);
    toldOff = true;
    return Promise.resolve(undefined);
  }
  loading ??= (async () => {
    try {
      const [open, add, remove, close] = await Promise.all([
        spawnAddonExport('inotifyOpen'),
        spawnAddonExport('inotifyAdd'),
        spawnAddonExport('inotifyRemove'),
        spawnAddonExport('inotifyClose'),
      ]);
      return { open, add, remove, close };
    } catch (err) {
      logger?.warn({ err: (err as Error).message }, "native inotify reader not loaded: directories are watched through Node's fs.watch");
      return undefined;
    }
  })();
  return loading;
}
