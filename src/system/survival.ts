import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { priorityResetPrefix, raiseDaemonPriority } from './priority.js';

/**
 * Keeping the daemon alive in the sandbox it serves: every process there hangs on it.
 *
 * As root the daemon takes itself out of the OOM killer's reach (oom_score_adj -1000, what E2B's
 * envd unit sets with OOMScoreAdjust) and gives each child the default (0) back. Children inherit
 * the daemon's value, and Node has no hook between fork and exec, so a child starts under a /bin/sh
 * prelude that writes its own /proc/self/oom_score_adj and then execs the program (same pid): no
 * window in which the child, or anything it forks, runs protected. envd wraps its children the same
 * way (it gives them 100).
 */
export const DAEMON_OOM_SCORE_ADJ = -1000;
export const CHILD_OOM_SCORE_ADJ = 0;

const SHELL = '/bin/sh';

interface Protection {
  /** Shell commands a child runs before exec'ing its program; empty when nothing needs undoing. */
  prelude: string[];
}

const protection: Protection = { prelude: [] };

function ownOomScoreAdj(): number | undefined {
  try {
    return Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim());
  } catch {
    return undefined;
  }
}

/**
 * Protects the daemon where it can and logs what stays unprotected. Lowering oom_score_adj takes
 * CAP_SYS_RESOURCE; without it a value a service manager gave (systemd's OOMScoreAdjust, as E2B's
 * envd unit sets) is kept. Whatever the daemon's value, children get the default back.
 */
export function protectDaemon(logger: Logger): void {
  protection.prelude = [];
  raiseDaemonPriority(logger);
  if (process.getuid?.() === 0) {
    try {
      writeFileSync('/proc/self/oom_score_adj', String(DAEMON_OOM_SCORE_ADJ));
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'could not lower oom_score_adj (no CAP_SYS_RESOURCE?): the OOM killer may pick the daemon');
    }
  } else {
    logger.warn('not running as root: the OOM killer may pick the daemon');
  }
  const own = ownOomScoreAdj();
  if (own === undefined || own === CHILD_OOM_SCORE_ADJ) return;
  try {
    accessSync(SHELL, constants.X_OK);
  } catch {
    logger.warn({ shell: SHELL, oomScoreAdj: own }, 'no shell to reset oom_score_adj: children inherit the daemon\'s');
    return;
  }
  protection.prelude = [`{ echo ${CHILD_OOM_SCORE_ADJ} > /proc/self/oom_score_adj; } 2>/dev/null`];
  if (own === DAEMON_OOM_SCORE_ADJ) logger.info({ oomScoreAdj: own, childOomScoreAdj: CHILD_OOM_SCORE_ADJ }, 'daemon protected from the OOM killer');
  else logger.info({ oomScoreAdj: own, childOomScoreAdj: CHILD_OOM_SCORE_ADJ }, 'children get the default oom_score_adj back');
}

/**
 * `file args` run through the prelude, when there is one, and exec'd through the priority reset
 * (priority.ts) when the daemon runs at another nice; with no prelude, through that reset alone.
 */
export function withSurvivalPrelude<P extends { file: string; args: string[] }>(plan: P): P {
  const reset = priorityResetPrefix();
  if (protection.prelude.length === 0) {
    if (reset.length === 0) return plan;
    return { ...plan, file: reset[0]!, args: [...reset.slice(1), plan.file, ...plan.args] };
  }
  const script = `${protection.prelude.join('; ')}; exec ${reset.map(shellQuote).join(' ')}${reset.length > 0 ? ' ' : ''}"$0" "$@"`;
  return { ...plan, file: SHELL, args: ['-c', script, plan.file, ...plan.args] };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
