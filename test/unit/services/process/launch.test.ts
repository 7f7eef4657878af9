import { describe, expect, it } from 'vitest';
import { ConnectError, Code } from '@connectrpc/connect';
import { launchPlan } from '../../../../src/services/process/launch.js';

const root = { uid: 0, gid: 0, groups: [0] };
const user = { uid: 1000, gid: 1000, groups: [1000, 27, 100] };

describe('launchPlan', () => {
  it('runs the program directly when the user is the daemon itself', () => {
    expect(launchPlan(root, '/bin/bash', ['-c', 'id'], { self: root, setpriv: '/usr/bin/setpriv' })).toEqual({ file: '/bin/bash', args: ['-c', 'id'] });
  });

  it('switches uid, gid and every supplementary group through setpriv', () => {
    expect(launchPlan(user, '/bin/bash', ['-l'], { self: root, setpriv: '/usr/bin/setpriv' })).toEqual({
      file: '/usr/bin/setpriv',
      args: ['--reuid=1000', '--regid=1000', '--groups=1000,27,100', '--', '/bin/bash', '-l'],
    });
  });

  it('switches groups even for the same uid when the group set differs', () => {
    const plan = launchPlan({ uid: 0, gid: 0, groups: [0, 4] }, '/bin/true', [], { self: root, setpriv: '/usr/bin/setpriv' });
    expect(plan.file).toBe('/usr/bin/setpriv');
  });

  it('lets Node switch uid and gid for a pipe process when the user has no supplementary group', () => {
    const plain = { uid: 1000, gid: 1000, groups: [1000] };
    expect(launchPlan(plain, '/bin/true', [], { self: root, setpriv: '/usr/bin/setpriv', nodeSpawn: true })).toEqual({ file: '/bin/true', args: [], uid: 1000, gid: 1000 });
    expect(launchPlan(plain, '/bin/true', [], { self: root, setpriv: '/usr/bin/setpriv' }).file).toBe('/usr/bin/setpriv');
    expect(launchPlan(user, '/bin/true', [], { self: root, setpriv: '/usr/bin/setpriv', nodeSpawn: true }).file).toBe('/usr/bin/setpriv');
  });

  it('hands uid, gid and every group to the native spawn, without setpriv', () => {
    expect(launchPlan(user, '/bin/bash', ['-l'], { self: root, setpriv: '/usr/bin/setpriv', native: true })).toEqual({ file: '/bin/bash', args: ['-l'], uid: 1000, gid: 1000, groups: [1000, 27, 100] });
    expect(launchPlan({ uid: 1000, gid: 1000, groups: [] }, '/bin/true', [], { self: root, setpriv: null, native: true }).groups).toEqual([1000]);
    expect(launchPlan(root, '/bin/true', [], { self: root, native: true })).toEqual({ file: '/bin/true', args: [] });
  });

  it('falls back to uid/gid only, flagged as degraded, without setpriv', () => {
    expect(launchPlan(user, '/bin/true', [], { self: root, setpriv: null })).toEqual({ file: '/bin/true', args: [], uid: 1000, gid: 1000, degraded: true });
  });

  it('refuses another user when the daemon is not root', () => {
    let err: unknown;
    try {
      launchPlan(root, '/bin/true', [], { self: user, setpriv: '/usr/bin/setpriv' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
  });
});
