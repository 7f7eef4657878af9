import { Code, ConnectError } from '@connectrpc/connect';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { basicAuthUsername, requestUser } from '../../../src/auth/user.js';
import { DaemonState } from '../../../src/state.js';
import { UserDb } from '../../../src/system/users.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function fakeDb(): UserDb {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'users-'));
  writeFileSync(path.join(dir, 'passwd'), 'root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\n');
  writeFileSync(path.join(dir, 'group'), 'root:x:0:\nuser:x:1000:\ndocker:x:999:user\n');
  return new UserDb(path.join(dir, 'passwd'), path.join(dir, 'group'));
}

describe('basicAuthUsername', () => {
  it('reads the user of a Basic header with an empty password', () => {
    expect(basicAuthUsername(`Basic ${b64('user:')}`)).toBe('user');
    expect(basicAuthUsername(`basic ${b64('root:pw')}`)).toBe('root');
  });
  it('treats a missing or non-Basic header as no user', () => {
    expect(basicAuthUsername(undefined)).toBeUndefined();
    expect(basicAuthUsername('Bearer abc')).toBeUndefined();
    expect(basicAuthUsername(`Basic ${b64('nocolon')}`)).toBeUndefined();
  });
  it('keeps an empty name, which then fails lookup', () => {
    expect(basicAuthUsername(`Basic ${b64(':')}`)).toBe('');
  });
});

describe('requestUser', () => {
  const users = fakeDb();
  it('uses the Basic user, else the default user', () => {
    const state = new DaemonState({ user: 'root', accessToken: undefined, workdir: undefined });
    expect(requestUser(`Basic ${b64('user:')}`, state, users).uid).toBe(1000);
    expect(requestUser(null, state, users).name).toBe('root');
    state.defaultUser = 'user';
    expect(requestUser(null, state, users).home).toBe('/home/user');
  });
  it('answers unknown users as unauthenticated', () => {
    const state = new DaemonState({ user: 'root', accessToken: undefined, workdir: undefined });
    const err = (() => {
      try {
        requestUser(`Basic ${b64('ghost:')}`, state, users);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
    expect((err as ConnectError).rawMessage).toBe("invalid username: 'ghost'");
  });
  it('collects supplementary groups from /etc/group', () => {
    expect(users.lookup('user').groups).toEqual([1000, 999]);
    expect(users.groupName(999)).toBe('docker');
    expect(users.userName(4242)).toBe('4242');
  });
});
