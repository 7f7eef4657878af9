import { Code, ConnectError } from '@connectrpc/connect';
import { setprivBinary } from '../../system/setpriv.js';
import type { User } from '../../system/users.js';

/** What to exec so that a program runs as a user: the file, its argv, and uid/gid for Node to set (if any). */
export interface LaunchPlan {
  file: string;
  args: string[];
  uid?: number;
  gid?: number;
  /** Supplementary groups to set with uid/gid (the native spawn sets all three; Node's spawn cannot). */
  groups?: number[];
}

export { setprivBinary };

function sameGroups(a: readonly number[], b: readonly number[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((g) => sb.has(g));
}

export interface LaunchContext {
  /** The daemon's own identity. */
  self?: { uid: number; gid: number; groups: readonly number[] };
  /** setpriv's path, null when it is missing. */
  setpriv?: string | null;
  /**
   * The program is started by Node's child_process (pipes), whose uid/gid switch also empties the
   * supplementary groups (libuv calls setgroups(0) first). node-pty's switch does not, so a PTY
   * always goes through setpriv.
   */
  nodeSpawn?: boolean;
  /** The program is started by the native spawn (native/spawn), which sets uid, gid and groups itself. */
  native?: boolean;
}

/**
 * How to start `file args` as `user`, with uid, gid and supplementary groups.
 *
 * Node's spawn (and node-pty) can set uid and gid but not supplementary groups: libuv drops them
 * all. So a daemon running as root execs through util-linux's `setpriv --reuid --regid --groups`,
 * which sets all three and then execs the program in place (same pid, nothing left in between).
 * When the user is the daemon's own identity no switch is needed, and when the user has no group
 * besides its primary one, Node's spawn switches uid and gid itself: one exec fewer per command
 * (setpriv's exec and dynamic loading cost 1–13 ms here, as much as `bash -l -c true` itself).
 * Without setpriv we fall back to Node's uid/gid (supplementary groups dropped) and say so
 * through `degraded`.
 */
export function launchPlan(user: Pick<User, 'uid' | 'gid' | 'groups'>, file: string, args: readonly string[], ctx: LaunchContext = {}): LaunchPlan & { degraded?: boolean } {
  const self = ctx.self ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, groups: process.getgroups?.() ?? [] };
  const setpriv = ctx.setpriv === undefined ? setprivBinary() : ctx.setpriv;
  if (user.uid === self.uid && user.gid === self.gid && sameGroups(user.groups, self.groups)) {
    return { file, args: [...args] };
  }
  if (self.uid !== 0) {
    throw new ConnectError(
      `cannot start a process as uid ${user.uid}: the daemon runs as uid ${self.uid}, not root`,
      Code.PermissionDenied,
    );
  }
  if (ctx.native) {
    return { file, args: [...args], uid: user.uid, gid: user.gid, groups: user.groups.length > 0 ? [...user.groups] : [user.gid] };
  }
  if (ctx.nodeSpawn && user.groups.every((g) => g === user.gid)) {
    return { file, args: [...args], uid: user.uid, gid: user.gid };
  }
  if (setpriv) {
    const groups = user.groups.length > 0 ? user.groups : [user.gid];
    return {
      file: setpriv,
      args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, `--groups=${groups.join(',')}`, '--', file, ...args],
    };
  }
  return { file, args: [...args], uid: user.uid, gid: user.gid, degraded: true };
}
