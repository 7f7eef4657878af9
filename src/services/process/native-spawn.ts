import type { Logger } from '../../log.js';
import type { SpawnOptions, SpawnedChild } from 'sandboxd-spawn';
import { spawnAddonExport } from '../../system/spawn-addon.js';

export type { SpawnOptions as NativeSpawnOptions, SpawnedChild as NativeChild } from 'sandboxd-spawn';

/**
 * The addon's one call (native/spawn/src/spawn.c): resolves once the child has exec'd, rejects with
 * the system error of the step that failed before (then `onExit` never runs).
 */
export type NativeSpawn = (options: SpawnOptions, onExit: (code: number, signal: number) => void) => Promise<SpawnedChild>;

/**
 * `SANDBOXD_NATIVE_SPAWN=0` turns the addon off: children start through Node's child_process and the
 * /bin/sh prelude (survival.ts), as before the addon.
 */
export const NATIVE_SPAWN_ENV = 'SANDBOXD_NATIVE_SPAWN';

let loading: Promise<NativeSpawn | undefined> | undefined;

/**
 * The addon's spawn, loaded on first use (not at the daemon's start); undefined when it is turned off
 * or cannot load, which is logged once: then every child goes the old way.
 */
export function nativeSpawn(logger?: Logger): Promise<NativeSpawn | undefined> {
  loading ??= (async () => {
    if (process.env[NATIVE_SPAWN_ENV] === '0') {
      logger?.info(`${NATIVE_SPAWN_ENV}=0: children start through Node's child_process`);
      return undefined;
    }
    try {
      const spawn = await spawnAddonExport('spawn');
      return (options, onExit) =>
        new Promise<SpawnedChild>((resolve, reject) => {
          spawn(options, onExit, (err, child) => (child ? resolve(child) : reject(err ?? new Error(`spawn ${options.file}: the addon reported nothing`))));
        });
    } catch (err) {
      logger?.warn({ err: (err as Error).message }, 'native spawn addon not loaded: children start through Node\'s child_process and a /bin/sh prelude');
      return undefined;
    }
  })();
  return loading;
}
