import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { setprivBinary } from './setpriv.js';
import { manageCgroups, type CgroupOptions, type ChildCgroups, type ChildGroup } from './cgroups.js';
import { childNice, priorityResetPrefix, raiseDaemonPriority } from './priority.js';

/**
 * Keeping the daemon alive in the sandbox it serves: every process there hangs on it.
 *
 * As root the daemon takes itself out of the OOM killer's reach (oom_score_adj -1000, what E2B's
 * envd unit sets with OOMScoreAdjust) and gives each child the default (0) back. Children inherit
 * the daemon's value, and Node has no hook between fork and exec, so a child starts under a /bin/sh
 * prelude that writes its own /proc/self/oom_score_adj and then execs the program (same pid): no
 * window in which the child, or anything it forks, runs protected. envd wraps its children the same
 * way (it gives them 100).
 *
 * Where cgroup v2 is writable the same prelude moves the child into its group (see cgroups.ts)
 * before the exec. Joining a cgroup takes root, so a child that Node would switch to another uid
 * itself goes through setpriv instead, after the prelude has run as root.
 */
export const DAEMON_OOM_SCORE_ADJ = -1000;
export const CHILD_OOM_SCORE_ADJ = 0;

const SHELL = '/bin/sh';

interface Protection {
  /** Resets oom_score_adj; undefined when children start with the default anyway. */
  oom: string | undefined;
  /** Where each kind of child goes; undefined when they stay in the daemon's cgroup. */
  cgroups: ChildCgroups | undefined;
  /** setpriv, for children that must switch uid after joining their cgroup. */
  setpriv: string | null;
}

const protection: Protection = { oom: undefined, cgroups: undefined, setpriv: null };

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

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
export function protectDaemon(logger: Logger, cgroups: CgroupOptions = { root: '/sys/fs/cgroup', enabled: false }): void {
  protection.oom = undefined;
  protection.cgroups = undefined;
  raiseDaemonPriority(logger);
  protectFromOomKiller(logger);
  const children = manageCgroups(cgroups, logger);
  if (children === undefined) return;
  try {
    accessSync(SHELL, constants.X_OK);
  } catch {
    logger.warn({ shell: SHELL }, 'no shell to move children into their cgroups: they stay in the daemon\'s');
    return;
  }
  protection.cgroups = children;
  protection.setpriv = setprivBinary();
  if (protection.setpriv === null) logger.warn('setpriv not found: children started as another user stay in the daemon\'s cgroup');
}

function protectFromOomKiller(logger: Logger): void {
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
  protection.oom = `{ echo ${CHILD_OOM_SCORE_ADJ} > /proc/self/oom_score_adj; } 2>/dev/null`;
  if (own === DAEMON_OOM_SCORE_ADJ) logger.info({ oomScoreAdj: own, childOomScoreAdj: CHILD_OOM_SCORE_ADJ }, 'daemon protected from the OOM killer');
  else logger.info({ oomScoreAdj: own, childOomScoreAdj: CHILD_OOM_SCORE_ADJ }, 'children get the default oom_score_adj back');
}

/** What a child spawned natively (native/spawn) sets itself between clone and exec, as the prelude would. */
export interface ChildSetup {
  oomScoreAdj?: number;
  /** The cgroup.procs file of the child's group. */
  cgroupProcs?: string;
  nice?: number;
}

/** The prelude's steps as parameters, for a child that joins `group`; it does them as root, before any uid switch. */
export function childSetup(group: ChildGroup = 'user'): ChildSetup {
  const setup: ChildSetup = {};
  if (protection.oom !== undefined) setup.oomScoreAdj = CHILD_OOM_SCORE_ADJ;
  const cgroup = protection.cgroups?.[group];
  if (cgroup !== undefined) setup.cgroupProcs = `${cgroup}/cgroup.procs`;
  const nice = childNice();
  if (nice !== undefined) setup.nice = nice;
  return setup;
}

/**
 * `file args` run through the prelude, when there is one; `group` says which cgroup the child
 * joins (commands and MCP servers: user; terminals: pty). When the daemon runs at another nice the
 * program is exec'd through the priority reset (priority.ts), with no prelude through it alone.
 */
export function withSurvivalPrelude<P extends { file: string; args: string[]; uid?: number; gid?: number }>(plan: P, group: ChildGroup = 'user'): P {
  const steps: string[] = [];
  if (protection.oom !== undefined) steps.push(protection.oom);
  const reset = priorityResetPrefix();
  const via = reset.map((a) => `${shellQuote(a)} `).join('');
  let exec = `exec ${via}"$0" "$@"`;
  let rest: Partial<P> = {};
  const cgroup = protection.cgroups?.[group];
  if (cgroup !== undefined && (plan.uid === undefined || protection.setpriv !== null)) {
    steps.push(`{ echo $$ > ${shellQuote(`${cgroup}/cgroup.procs`)}; } 2>/dev/null`);
    if (plan.uid !== undefined) {
      // Node would switch uid before the prelude runs; setpriv switches after it (same groups: none besides gid).
      const gid = plan.gid ?? plan.uid;
      exec = `exec ${via}${shellQuote(protection.setpriv!)} --reuid=${plan.uid} --regid=${gid} --groups=${gid} -- "$0" "$@"`;
      rest = { uid: undefined, gid: undefined } as Partial<P>;
    }
  }
  if (steps.length === 0) {
    if (reset.length === 0) return plan;
    return { ...plan, file: reset[0]!, args: [...reset.slice(1), plan.file, ...plan.args] };
  }
  const script = `${steps.join('; ')}; ${exec}`;
  return { ...plan, ...rest, file: SHELL, args: ['-c', script, plan.file, ...plan.args] };
}
