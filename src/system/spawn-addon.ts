import type * as SpawnAddon from 'sandboxd-spawn';

type Exports = typeof SpawnAddon;

let loading: Promise<Exports> | undefined;

/**
 * One function of our addon (native/spawn: the native spawn, malloc_trim, sendfile), which is loaded once, on
 * first use, never at the daemon's start. Rejects when the addon cannot load or lacks it; each caller
 * decides what that means.
 */
export async function spawnAddonExport<K extends keyof Exports>(name: K): Promise<Exports[K]> {
  loading ??= import('sandboxd-spawn') as Promise<Exports>;
  const mod = (await loading) as Partial<Exports> & { default?: Partial<Exports> };
  // A CommonJS addon: its exports are the namespace's own or its default's, by bundler and loader.
  const fn = mod[name] ?? mod.default?.[name];
  if (typeof fn !== 'function') throw new Error(`the addon exports no ${name}()`);
  return fn as Exports[K];
}
