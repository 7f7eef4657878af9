import { firstExecutable } from './find-executable.js';
import { getPriority, setPriority } from 'node:os';
import type { Logger } from '../log.js';

/**
 * The daemon's CPU priority, as E2B's envd unit gives envd (`Nice=-20`), and the default (0) back
 * for every child, as envd's wrapper does (`nice -n <0 - own nice>` before the program).
 *
 * Why it matters beyond the daemon answering promptly under load: Node's spawn forks the daemon and
 * blocks its event loop until the child has exec'd, and on a loaded machine the new child first
 * waits its turn for a CPU. Measured here under load 12 on 2 cores: 200 concurrent spawns blocked
 * the loop 16–23 ms each (3.3–4.8 s in all, one after another) at nice 0, 3.3 ms each at -20. Go
 * forks from many threads at once, so envd never queues its spawns behind one another.
 *
 * The child inherits the daemon's nice at fork, so it must get the default back before the program
 * runs: the survival prelude execs the program through coreutils' `nice` (same pid). Without `nice`
 * the daemon keeps the nice it was given, so no child ever runs above the default.
 */
export const DAEMON_NICE = -20;
export const CHILD_NICE = 0;

const NICE_CANDIDATES = ['/usr/bin/nice', '/bin/nice'];

/** What a child's program is exec'd through to get CHILD_NICE back; empty when the daemon runs at it. */
let resetPrefix: string[] = [];

/**
 * As root, raises the daemon's priority to DAEMON_NICE (Linux: the main thread, which every child
 * is forked from, and the thread-pool threads it starts later), when children can be given the
 * default back. Whatever the daemon's nice (a service manager's `Nice=` too), children get CHILD_NICE.
 */
export function raiseDaemonPriority(logger: Logger): void {
  resetPrefix = [];
  const nice = firstExecutable(NICE_CANDIDATES);
  if (process.getuid?.() === 0) {
    if (nice === undefined) {
      logger.warn('no nice binary to give children the default priority back: the daemon keeps its own');
    } else {
      try {
        setPriority(DAEMON_NICE);
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'could not raise the daemon\'s priority (no CAP_SYS_NICE?)');
      }
    }
  }
  const own = getPriority();
  // Lowering a nice value back takes root; a non-root daemon given a higher one keeps it for its children.
  if (own === CHILD_NICE || (own > CHILD_NICE && process.getuid?.() !== 0)) return;
  if (nice === undefined) {
    logger.warn({ nice: own }, 'no nice binary: children inherit the daemon\'s nice');
    return;
  }
  resetPrefix = [nice, '-n', String(CHILD_NICE - own)];
  logger.info({ nice: own, childNice: CHILD_NICE }, 'children get the default nice back');
}

/** The nice a child must be given (CHILD_NICE) when it does not start at it; undefined otherwise. */
export function childNice(): number | undefined {
  return resetPrefix.length > 0 ? CHILD_NICE : undefined;
}

/** The command a child's program is exec'd through (`nice -n N`), empty when none is needed. */
export function priorityResetPrefix(): readonly string[] {
  return resetPrefix;
}
