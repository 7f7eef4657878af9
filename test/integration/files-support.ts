import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Makes sure the unprivileged `user` account exists (E2B images have it); we run as root. */
export function ensureUser(name = 'user'): { uid: number; gid: number; home: string } {
  const lookup = (): string | undefined => {
    try {
      return execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
    } catch {
      return undefined;
    }
  };
  let line = lookup();
  if (!line) {
    try {
      execFileSync('useradd', ['-m', '-s', '/bin/bash', name], { stdio: 'pipe' });
    } catch (err) {
      // Another suite may have created it at the same moment.
      line = lookup();
      if (!line) throw err;
    }
    line = lookup();
  }
  const [, , uid, gid, , home] = (line ?? '').split(':');
  return { uid: Number(uid), gid: Number(gid), home: home ?? `/home/${name}` };
}

/** A fresh scratch directory for one suite. */
export function scratchDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `sandboxd-${prefix}-`));
}

/** inotify watches a process holds (one per watched directory), over all its inotify fds. */
export function inotifyWatches(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:inotify') continue;
      n += readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('inotify wd')).length;
    } catch {
      // fd closed meanwhile
    }
  }
  return n;
}
