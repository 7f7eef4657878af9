import { readFileSync, statSync } from 'node:fs';

export interface User {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  /** Supplementary group ids (from /etc/group), including the primary gid. */
  groups: number[];
}

interface Db {
  users: Map<string, User>;
  userNames: Map<number, string>;
  groupNames: Map<number, string>;
}

/** Owner and group names by id: a UserDb, or a snapshot of it taken for one request. */
export interface OwnerNames {
  userName(uid: number): string;
  groupName(gid: number): string;
}

export class UserNotFoundError extends Error {
  constructor(readonly username: string) {
    super(`user '${username}' not found`);
  }
}

/**
 * Users and groups from passwd/group files. The files are re-read when they change,
 * so users added while the daemon runs (useradd in a sandbox) are found.
 */
export class UserDb {
  private db: Db | undefined;

  constructor(
    private readonly passwdPath = '/etc/passwd',
    private readonly groupPath = '/etc/group',
  ) {}

  /**
   * True when both files still have the mtime, size and inode `stamp` holds (updated in place when
   * not). Runs on every lookup, so it allocates nothing beyond the two Stats objects.
   */
  private unchanged(stamp: number[]): boolean {
    let same = true;
    let i = 0;
    for (const p of [this.passwdPath, this.groupPath]) {
      const st = statSync(p, { throwIfNoEntry: false });
      const mtime = st?.mtimeMs ?? -1;
      const size = st?.size ?? -1;
      const ino = st?.ino ?? -1;
      if (stamp[i] !== mtime || stamp[i + 1] !== size || stamp[i + 2] !== ino) same = false;
      stamp[i] = mtime;
      stamp[i + 1] = size;
      stamp[i + 2] = ino;
      i += 3;
    }
    return same;
  }

  private readonly stamp: number[] = [NaN, NaN, NaN, NaN, NaN, NaN];

  private load(): Db {
    if (this.unchanged(this.stamp) && this.db) return this.db;
    const users = new Map<string, User>();
    const userNames = new Map<number, string>();
    const groupNames = new Map<number, string>();
    const membersOf = new Map<string, number[]>();
    for (const line of readLines(this.groupPath)) {
      const [name, , gidText, members] = line.split(':');
      const gid = Number(gidText);
      if (!name || !Number.isInteger(gid)) continue;
      if (!groupNames.has(gid)) groupNames.set(gid, name);
      for (const m of (members ?? '').split(',').filter(Boolean)) {
        const list = membersOf.get(m) ?? [];
        list.push(gid);
        membersOf.set(m, list);
      }
    }
    for (const line of readLines(this.passwdPath)) {
      const [name, , uidText, gidText, , home, shell] = line.split(':');
      const uid = Number(uidText);
      const gid = Number(gidText);
      if (!name || !Number.isInteger(uid) || !Number.isInteger(gid)) continue;
      const groups = [gid, ...(membersOf.get(name) ?? []).filter((g) => g !== gid)];
      if (!users.has(name)) users.set(name, { name, uid, gid, home: home || '/', shell: shell || '/bin/sh', groups });
      if (!userNames.has(uid)) userNames.set(uid, name);
    }
    this.db = { users, userNames, groupNames };
    return this.db;
  }

  /** The named user; throws UserNotFoundError. */
  lookup(name: string): User {
    const user = this.load().users.get(name);
    if (!user) throw new UserNotFoundError(name);
    return user;
  }

  exists(name: string): boolean {
    return this.load().users.has(name);
  }

  /** Name for a uid, or the number as text (as `ls -l` shows unknown owners). */
  userName(uid: number): string {
    return this.load().userNames.get(uid) ?? String(uid);
  }

  groupName(gid: number): string {
    return this.load().groupNames.get(gid) ?? String(gid);
  }

  /**
   * Names as the files stand now, without re-checking them on each lookup: for one request that
   * names many owners (a directory listing), where a check per entry would cost two stats each.
   */
  names(): OwnerNames {
    const { userNames, groupNames } = this.load();
    return {
      userName: (uid) => userNames.get(uid) ?? String(uid),
      groupName: (gid) => groupNames.get(gid) ?? String(gid),
    };
  }
}

function readLines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
  } catch {
    return [];
  }
}
