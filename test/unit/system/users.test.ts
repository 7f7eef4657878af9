import { mkdtempSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserDb } from '../../../src/system/users.js';

describe('UserDb names', () => {
  let dir: string;
  let db: UserDb;
  const passwd = (): string => path.join(dir, 'passwd');
  const group = (): string => path.join(dir, 'group');
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'users-'));
    writeFileSync(passwd(), 'root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\n');
    writeFileSync(group(), 'root:x:0:\nuser:x:1000:\n');
    db = new UserDb(passwd(), group());
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('names owners and groups by id, and unknown ids by their number', () => {
    const names = db.names();
    expect([names.userName(0), names.userName(1000), names.userName(4242)]).toEqual(['root', 'user', '4242']);
    expect([names.groupName(1000), names.groupName(77)]).toEqual(['user', '77']);
  });

  it('keeps a snapshot as it was while the database itself follows the files', () => {
    const before = db.names();
    writeFileSync(passwd(), 'root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\nnewbie:x:1001:1001::/home/newbie:/bin/sh\n');
    writeFileSync(group(), 'root:x:0:\nuser:x:1000:\nnewbie:x:1001:\n');
    expect(before.userName(1001)).toBe('1001');
    expect(db.userName(1001)).toBe('newbie');
    expect(db.names().groupName(1001)).toBe('newbie');
  });

  it('sees a file replaced by rename even with the same size and mtime (useradd writes a new file)', () => {
    expect(() => db.lookup('root')).not.toThrow();
    const old = statSync(passwd());
    const next = path.join(dir, 'passwd+');
    writeFileSync(next, 'toor:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\n');
    utimesSync(next, old.atime, old.mtime);
    renameSync(next, passwd());
    expect(db.lookup('toor').uid).toBe(0);
    expect(() => db.lookup('root')).toThrow("user 'root' not found");
  });

  it('follows a group file that appears after start', () => {
    rmSync(group());
    db = new UserDb(passwd(), group());
    expect(db.lookup('user').groups).toEqual([1000]);
    writeFileSync(group(), 'root:x:0:\nuser:x:1000:\nwheel:x:10:user\n');
    expect(db.lookup('user').groups).toEqual([1000, 10]);
  });
});
