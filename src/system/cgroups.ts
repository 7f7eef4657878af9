import { closeSync, constants, mkdirSync, openSync, readFileSync, statfsSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';

/**
 * cgroup v2 placement, so that a fork bomb or memory hog in the sandbox cannot starve the daemon.
 *
 * E2B's envd creates `user`, `ptys` and `socats` beside itself under the cgroup root and starts each
 * child straight into one (clone3 CLONE_INTO_CGROUP); the children's groups get memory.high =
 * memory.max = the machine's memory minus min(1/8, 128 MiB), and cpu/io weights (user 50, ptys 200).
 * Node cannot clone into a cgroup, so a child joins its group from the /bin/sh prelude that also
 * resets oom_score_adj (`echo $$ > …/cgroup.procs`, then exec: no window in which it or anything it
 * forks runs in the daemon's group). The layout lives under the daemon's own cgroup rather than the
 * root, and the children share one parent, so their limits bound all of them together:
 *
 *     <own>/daemon          the daemon (a leaf: cgroup v2 lets <own> enable controllers only
 *                           once no process is left in it); memory.min/low, cpu.weight 300
 *     <own>/sandbox         every child: memory.high = memory.max, pids.max, cpu.weight 100
 *     <own>/sandbox/user    commands, MCP servers (cpu.weight 50, io.weight 10, as envd's user)
 *     <own>/sandbox/ptys    PTYs (cpu.weight 200, io.weight 50, as envd's ptys)
 */

/** cgroup2's statfs magic (CGROUP2_SUPER_MAGIC). */
const CGROUP2_SUPER_MAGIC = 0x63677270;

const MiB = 1024 * 1024;

/** Controllers the layout uses, enabled where the parent offers them. */
export const WANTED_CONTROLLERS = ['cpu', 'io', 'memory', 'pids'] as const;

export type ChildGroup = 'user' | 'pty';

/** Where each kind of child goes: absolute cgroupfs directories. */
export type ChildCgroups = Record<ChildGroup, string>;

/** What the machine offers the layout: totals the children's limits are cut from. */
export interface Budget {
  /** Bytes the daemon and its children may use together (MemTotal, or <own>'s memory.max if lower). */
  memory: number;
  /** Processes and threads they may have together (pid_max/threads-max, or <own>'s pids.max if lower). */
  pids: number;
}

/** Interface files to write, per group relative to the daemon's own cgroup. */
export type Properties = Record<string, Record<string, string>>;

/** The limits of the layout (see the module comment), from the budget. */
export function layoutProperties(budget: Budget): Properties {
  // envd's rule: keep 1/8 of memory, at most 128 MiB, out of the children's reach.
  const childMemory = budget.memory - Math.min(Math.floor(budget.memory / 8), 128 * MiB);
  // The same rule for processes: an eighth, at most 256, stays for the daemon (its threads and forks).
  const childPids = budget.pids - Math.min(Math.floor(budget.pids / 8), 256);
  return {
    daemon: { 'memory.min': String(32 * MiB), 'memory.low': String(64 * MiB), 'cpu.weight': '300', 'io.weight': 'default 200' },
    sandbox: { 'memory.high': String(childMemory), 'memory.max': String(childMemory), 'pids.max': String(childPids), 'cpu.weight': '100' },
    'sandbox/user': { 'cpu.weight': '50', 'io.weight': 'default 10' },
    'sandbox/ptys': { 'cpu.weight': '200', 'io.weight': 'default 50' },
  };
}

/** The daemon's cgroup v2 path from /proc/self/cgroup's `0::<path>` line; undefined without one. */
export function ownCgroupPath(procSelfCgroup: string): string | undefined {
  const line = procSelfCgroup.split('\n').find((l) => l.startsWith('0::'));
  const p = line?.slice(3).trim();
  return p && p.startsWith('/') ? p : undefined;
}

/** Writes an existing interface file (no O_CREAT, as envd: a missing file means its controller is off). */
function writeProp(file: string, value: string): void {
  const fd = openSync(file, constants.O_WRONLY | constants.O_TRUNC);
  try {
    writeSync(fd, value);
  } finally {
    closeSync(fd);
  }
}

function readNumber(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export interface Placement {
  children: ChildCgroups;
  /** The daemon's leaf. */
  daemon: string;
  /** Controllers enabled for the layout. */
  controllers: string[];
  /** `group/file=value` written. */
  applied: string[];
  /** Why each limit or controller the layout wanted is missing. */
  unprotected: string[];
}

/**
 * Builds the layout under `ownDir` (the daemon's cgroup directory) and moves process `pid` into
 * `<own>/daemon`. Throws only when the daemon cannot be moved (then nothing of the layout is used);
 * a controller or limit the kernel refuses is reported in `unprotected`.
 */
export function placeDaemon(ownDir: string, pid: number, budget: Budget): Placement {
  const daemon = path.join(ownDir, 'daemon');
  mkdirSync(daemon, { recursive: true });
  writeProp(path.join(daemon, 'cgroup.procs'), String(pid));

  const unprotected: string[] = [];
  const controllers: string[] = [];
  const enable = (dir: string, offered: string[]): string[] => {
    const on: string[] = [];
    for (const c of WANTED_CONTROLLERS) {
      if (!offered.includes(c)) continue;
      try {
        writeProp(path.join(dir, 'cgroup.subtree_control'), `+${c}`);
        on.push(c);
      } catch (err) {
        // EBUSY: <own> still holds processes besides the daemon (cgroup v2's no-internal-processes rule).
        unprotected.push(`${c} controller in ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    return on;
  };
  const offered = readFileSync(path.join(ownDir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
  for (const c of WANTED_CONTROLLERS) if (!offered.includes(c)) unprotected.push(`${c} controller: not offered in ${ownDir}`);
  controllers.push(...enable(ownDir, offered));

  const sandbox = path.join(ownDir, 'sandbox');
  mkdirSync(path.join(sandbox, 'user'), { recursive: true });
  mkdirSync(path.join(sandbox, 'ptys'), { recursive: true });
  enable(sandbox, controllers);

  const applied: string[] = [];
  for (const [group, props] of Object.entries(layoutProperties(budget))) {
    for (const [file, value] of Object.entries(props)) {
      if (!controllers.includes(file.slice(0, file.indexOf('.')))) continue;
      try {
        writeProp(path.join(ownDir, group, file), value);
        applied.push(`${group}/${file}=${value}`);
      } catch (err) {
        unprotected.push(`${group}/${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
  }
  return { children: { user: path.join(sandbox, 'user'), pty: path.join(sandbox, 'ptys') }, daemon, controllers, applied, unprotected };
}

/** The machine's totals, lowered to what <own> may use when it has limits of its own. */
export function readBudget(ownDir: string): Budget {
  const memTotalKb = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  const pidMax = Math.min(readNumber('/proc/sys/kernel/pid_max') ?? 32768, readNumber('/proc/sys/kernel/threads-max') ?? Infinity);
  return {
    memory: Math.min(memTotalKb * 1024, readNumber(path.join(ownDir, 'memory.max')) ?? Infinity),
    pids: Math.min(pidMax, readNumber(path.join(ownDir, 'pids.max')) ?? Infinity),
  };
}

export interface CgroupOptions {
  /** Where cgroup v2 is mounted (envd's --cgroup-root). */
  root: string;
  /** False with --no-cgroups. */
  enabled: boolean;
}

/**
 * Places the daemon and says, once, what stays unprotected. Returns where children go, or
 * undefined when they stay in the daemon's cgroup (no cgroup v2 at `root`, not root, not writable).
 */
export function manageCgroups(opts: CgroupOptions, logger: Logger): ChildCgroups | undefined {
  const unprotected = (reason: string): undefined => {
    logger.warn({ cgroupRoot: opts.root, reason }, 'children share the daemon\'s cgroup: a fork bomb or memory hog in the sandbox can starve the daemon');
    return undefined;
  };
  if (!opts.enabled) {
    logger.info('cgroups disabled by --no-cgroups: children share the daemon\'s cgroup');
    return undefined;
  }
  let type: number;
  try {
    type = statfsSync(opts.root).type;
  } catch (err) {
    return unprotected(`${opts.root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (type !== CGROUP2_SUPER_MAGIC) return unprotected(`${opts.root} is not a cgroup v2 mount (cgroup v1 or hybrid; --cgroup-root names another)`);
  if (process.getuid?.() !== 0) return unprotected('not running as root');
  const own = ownCgroupPath(readFileSync('/proc/self/cgroup', 'utf8'));
  if (own === undefined) return unprotected('no cgroup v2 entry in /proc/self/cgroup');
  const ownDir = path.join(opts.root, own);
  let placement: Placement;
  try {
    placement = placeDaemon(ownDir, process.pid, readBudget(ownDir));
  } catch (err) {
    return unprotected(`${ownDir}: ${(err as Error).message}`);
  }
  const fields = { daemonCgroup: placement.daemon, childCgroups: placement.children, controllers: placement.controllers, limits: placement.applied };
  if (placement.unprotected.length > 0) {
    logger.warn({ ...fields, unprotected: placement.unprotected }, 'daemon and children in cgroups of their own, but some limits are missing: the daemon is not fully protected from its children');
  } else {
    logger.info(fields, 'daemon and children in cgroups of their own');
  }
  return placement.children;
}
