import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Code, ConnectError } from '@connectrpc/connect';
import { permits, processEnv, resolveCwd, resolveExecutable } from '../../../../src/services/process/environment.js';
import type { User } from '../../../../src/system/users.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-env-'));
chmodSync(dir, 0o755);
const alice: User = { name: 'alice', uid: 4242, gid: 4242, home: dir, shell: '/bin/sh', groups: [4242, 77] };

async function codeOf(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err instanceof ConnectError ? err.code : undefined;
  }
}

describe('processEnv', () => {
  it('starts from the user defaults, then /init variables, then the request, later winning', () => {
    const env = processEnv(alice, new Map([['A', 'init'], ['B', 'init']]), { B: 'req', USER: 'override' });
    expect(env.HOME).toBe(dir);
    expect(env.LOGNAME).toBe('alice');
    expect(env.SHELL).toBe('/bin/sh');
    expect(env.PATH).toBeTruthy();
    expect(env.A).toBe('init');
    expect(env.B).toBe('req');
    expect(env.USER).toBe('override');
  });
});

describe('permits', () => {
  it('checks owner, group and other bits for a regular user', () => {
    expect(permits({ mode: 0o700, uid: 4242, gid: 0 }, alice, 'exec')).toBe(true);
    expect(permits({ mode: 0o070, uid: 1, gid: 77 }, alice, 'exec')).toBe(true);
    expect(permits({ mode: 0o770, uid: 1, gid: 1 }, alice, 'exec')).toBe(false);
    expect(permits({ mode: 0o001, uid: 1, gid: 1 }, alice, 'exec')).toBe(true);
  });

  it('lets root execute anything with an x bit, and nothing without', () => {
    const root = { uid: 0, groups: [0] };
    expect(permits({ mode: 0o001, uid: 1, gid: 1 }, root, 'exec')).toBe(true);
    expect(permits({ mode: 0o666, uid: 1, gid: 1 }, root, 'exec')).toBe(false);
  });
});

describe('resolveCwd', () => {
  it('defaults to the default workdir, then home', async () => {
    mkdirSync(path.join(dir, 'work'), { recursive: true });
    expect(await resolveCwd(undefined, alice, path.join(dir, 'work'))).toBe(path.join(dir, 'work'));
    expect(await resolveCwd(undefined, alice, undefined)).toBe(dir);
    expect(await resolveCwd('work', alice, undefined)).toBe(path.join(dir, 'work'));
  });

  it('rejects a missing directory or a file as invalid_argument', async () => {
    writeFileSync(path.join(dir, 'plain'), 'x');
    expect(await codeOf(resolveCwd('/no/such/dir', alice, undefined))).toBe(Code.InvalidArgument);
    expect(await codeOf(resolveCwd(path.join(dir, 'plain'), alice, undefined))).toBe(Code.InvalidArgument);
  });
});

describe('resolveExecutable', () => {
  const root: User = { ...alice, uid: 0, gid: 0, groups: [0] };

  it('finds a bare name in PATH and keeps a path with a slash', async () => {
    expect(await resolveExecutable('sh', '/', '/usr/bin:/bin', root)).toMatch(/\/sh$/);
    expect(await resolveExecutable('/bin/sh', '/', '', root)).toBe('/bin/sh');
  });

  it('resolves a relative path with a slash against the cwd', async () => {
    const script = path.join(dir, 'run.sh');
    writeFileSync(script, '#!/bin/sh\n');
    chmodSync(script, 0o755);
    expect(await resolveExecutable('./run.sh', dir, '', root)).toBe(script);
  });

  it('rejects an empty, missing, non-executable or directory command as invalid_argument', async () => {
    const data = path.join(dir, 'data.txt');
    writeFileSync(data, 'x');
    chmodSync(data, 0o644);
    expect(await codeOf(resolveExecutable('', '/', undefined, root))).toBe(Code.InvalidArgument);
    expect(await codeOf(resolveExecutable('no-such-binary-here', '/', '/usr/bin:/bin', root))).toBe(Code.InvalidArgument);
    expect(await codeOf(resolveExecutable('/no/such/binary', '/', undefined, root))).toBe(Code.InvalidArgument);
    expect(await codeOf(resolveExecutable(data, '/', undefined, root))).toBe(Code.InvalidArgument);
    expect(await codeOf(resolveExecutable('/tmp', '/', undefined, root))).toBe(Code.InvalidArgument);
  });
});

describe('resolveCwd permissions', () => {
  it('rejects a directory the user may not enter', async () => {
    const locked = path.join(dir, 'locked');
    mkdirSync(locked, { recursive: true });
    chmodSync(locked, 0o700);
    expect(await codeOf(resolveCwd(locked, alice, undefined))).toBe(Code.InvalidArgument);
  });
});
