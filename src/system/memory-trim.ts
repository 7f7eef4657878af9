import type { Logger } from '../log.js';
import { spawnAddonExport } from './spawn-addon.js';

/** `SANDBOXD_MALLOC_TRIM=0` turns the idle trim off. */
export const MALLOC_TRIM_ENV = 'SANDBOXD_MALLOC_TRIM';

/** How often the event loop's utilisation is sampled. */
const TICK_MS = 1000;
/** Below this share of a CPU used in a tick (all the daemon's threads), the daemon counts as quiet. */
const QUIET_CPU = 0.05;
/**
 * Quiet ticks after a busy spell at which to trim: at once, then after V8's memory reducer has run (it
 * starts ~8 s after allocation stops and frees, through its compacting GC, what Node's C++ objects and
 * Buffers held in malloc), then once more.
 */
const TRIM_AT = new Set([1, 12, 30]);

type Trim = () => boolean;

/**
 * After a burst of work, hands glibc's free pages back to the kernel (malloc_trim(0), through our addon,
 * native/spawn). free() returns a heap's pages only from its top, so after 1,000 concurrent commands
 * ~40 MiB of freed chunks stayed resident in the main arena and the thread-pool threads' arenas for
 * good (README, "Memory"). The daemon's CPU time is sampled once a second (process.cpuUsage, not
 * perf_hooks, which the start path leaves out; an unref'd timer: it never keeps the process alive); a trim
 * runs only while the daemon is quiet, so a burst never pays for it.
 */
export function startIdleTrim(logger: Logger): () => void {
  if (process.env[MALLOC_TRIM_ENV] === '0') return () => {};
  let trim: Trim | undefined | null;
  let last = process.cpuUsage();
  /** Quiet ticks since the last busy one; Infinity until the first busy tick. */
  let quiet = Infinity;
  const load = async (): Promise<Trim | null> => {
    try {
      return await spawnAddonExport('trim');
    } catch (err) {
      logger.debug({ err: (err as Error).message }, 'malloc trim unavailable: freed malloc memory stays resident');
      return null;
    }
  };
  const timer = setInterval(() => {
    const used = process.cpuUsage(last);
    last = process.cpuUsage();
    if ((used.user + used.system) / 1000 >= QUIET_CPU * TICK_MS) {
      quiet = 0;
      return;
    }
    quiet++;
    if (!TRIM_AT.has(quiet) || trim === null) return;
    void (async () => {
      trim ??= await load();
      if (!trim) return;
      const before = process.memoryUsage.rss();
      const t = process.hrtime.bigint();
      trim();
      logger.debug({ rssBefore: before, rssAfter: process.memoryUsage.rss(), ms: Number(process.hrtime.bigint() - t) / 1e6 }, 'malloc trim');
    })();
  }, TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
