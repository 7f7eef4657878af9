import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { layoutProperties, ownCgroupPath, placeDaemon } from '../../../src/system/cgroups.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * A stand-in for cgroupfs in a temp dir: the kernel populates a cgroup's interface files on mkdir,
 * plain directories do not, so the fake creates the files a cgroup would have with `controllers`
 * enabled above it. Nothing here touches the machine's cgroups.
 */
function fakeCgroup(dir: string, controllers: string[]): void {
  mkdirSync(dir, { recursive: true });
  const files = ['cgroup.procs', 'cgroup.subtree_control', 'cgroup.controllers'];
  const byController: Record<string, string[]> = {
    memory: ['memory.min', 'memory.low', 'memory.high', 'memory.max'],
    cpu: ['cpu.weight'],
    io: ['io.weight'],
    pids: ['pids.max'],
  };
  for (const c of controllers) files.push(...(byController[c] ?? []));
  for (const f of files) writeFileSync(path.join(dir, f), '');
  writeFileSync(path.join(dir, 'cgroup.controllers'), controllers.join(' ') + '\n');
}

function read(dir: string, file: string): string {
  return readFileSync(path.join(dir, file), 'utf8');
}

describe('the cgroup layout', () => {
  let own: string;
  beforeEach(() => {
    own = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-cgroupfs-'));
  });
  afterEach(() => rmSync(own, { recursive: true, force: true }));

  function layout(controllers: string[]): void {
    fakeCgroup(own, controllers);
    for (const g of ['daemon', 'sandbox', 'sandbox/user', 'sandbox/ptys']) fakeCgroup(path.join(own, g), controllers);
  }

  it('moves the daemon into <own>/daemon before enabling controllers in <own>, and sends children to sandbox/user and sandbox/ptys', () => {
    layout(['cpu', 'io', 'memory', 'pids']);
    const p = placeDaemon(own, 4242, { memory: 4 * GiB, pids: 32768 });
    expect(read(path.join(own, 'daemon'), 'cgroup.procs')).toBe('4242');
    expect(p.daemon).toBe(path.join(own, 'daemon'));
    expect(p.children).toEqual({ user: path.join(own, 'sandbox/user'), pty: path.join(own, 'sandbox/ptys') });
    expect(p.controllers).toEqual(['cpu', 'io', 'memory', 'pids']);
    expect(p.unprotected).toEqual([]);
    // A plain file keeps only the last write: the last controller enabled, one write per controller.
    expect(read(own, 'cgroup.subtree_control')).toBe('+pids');
    expect(read(path.join(own, 'sandbox'), 'cgroup.subtree_control')).toBe('+pids');
  });

  it('gives the daemon memory protection and weight, and the children a memory and process ceiling', () => {
    layout(['cpu', 'io', 'memory', 'pids']);
    placeDaemon(own, 1, { memory: 4 * GiB, pids: 32768 });
    const daemon = path.join(own, 'daemon');
    const sandbox = path.join(own, 'sandbox');
    expect(read(daemon, 'memory.min')).toBe(String(32 * MiB));
    expect(read(daemon, 'memory.low')).toBe(String(64 * MiB));
    expect(read(daemon, 'cpu.weight')).toBe('300');
    expect(read(sandbox, 'memory.max')).toBe(String(4 * GiB - 128 * MiB));
    expect(read(sandbox, 'memory.high')).toBe(String(4 * GiB - 128 * MiB));
    expect(read(sandbox, 'pids.max')).toBe(String(32768 - 256));
    expect(read(path.join(sandbox, 'user'), 'cpu.weight')).toBe('50');
    expect(read(path.join(sandbox, 'ptys'), 'cpu.weight')).toBe('200');
    expect(read(path.join(sandbox, 'ptys'), 'io.weight')).toBe('default 50');
  });

  it('says which limits are missing when the parent does not offer a controller, and writes none of its files', () => {
    layout(['cpu', 'memory']);
    const p = placeDaemon(own, 1, { memory: GiB, pids: 1000 });
    expect(p.controllers).toEqual(['cpu', 'memory']);
    expect(p.unprotected).toEqual([`io controller: not offered in ${own}`, `pids controller: not offered in ${own}`]);
    expect(p.applied).not.toContainEqual(expect.stringMatching(/^sandbox\/pids\.max/));
  });

  it('reports a controller the kernel refuses to enable (processes left in <own>) instead of failing', () => {
    layout(['cpu', 'io', 'memory', 'pids']);
    // A write that fails as the kernel's EBUSY would: the file is a directory here.
    rmSync(path.join(own, 'cgroup.subtree_control'));
    mkdirSync(path.join(own, 'cgroup.subtree_control'));
    const p = placeDaemon(own, 1, { memory: GiB, pids: 1000 });
    expect(p.controllers).toEqual([]);
    expect(p.unprotected).toHaveLength(4);
    expect(p.unprotected[0]).toMatch(/^cpu controller in .*: EISDIR$/);
    expect(p.applied).toEqual([]);
    expect(read(path.join(own, 'daemon'), 'cgroup.procs')).toBe('1');
  });

  it('fails when the daemon cannot be moved (not a cgroup: no cgroup.procs to write)', () => {
    mkdirSync(own, { recursive: true });
    expect(() => placeDaemon(own, 1, { memory: GiB, pids: 1000 })).toThrow(/ENOENT/);
  });

  it('keeps an eighth of a small machine out of the children\'s reach (envd\'s rule: at most 128 MiB)', () => {
    const small = layoutProperties({ memory: 512 * MiB, pids: 1024 });
    expect(small.sandbox!['memory.max']).toBe(String(448 * MiB));
    expect(small.sandbox!['pids.max']).toBe(String(1024 - 128));
    const big = layoutProperties({ memory: 64 * GiB, pids: 4_194_304 });
    expect(big.sandbox!['memory.max']).toBe(String(64 * GiB - 128 * MiB));
    expect(big.sandbox!['pids.max']).toBe(String(4_194_304 - 256));
  });
});

describe('the daemon\'s own cgroup', () => {
  it('is the path of the cgroup v2 line, in a hybrid or a pure v2 /proc/self/cgroup', () => {
    expect(ownCgroupPath('0::/system.slice/sandboxd.service\n')).toBe('/system.slice/sandboxd.service');
    expect(ownCgroupPath('9:name=systemd:/\n4:memory:/x\n0::/\n')).toBe('/');
  });

  it('is unknown without a cgroup v2 line (pure cgroup v1) or with a detached path', () => {
    expect(ownCgroupPath('4:memory:/x\n1:cpu:/\n')).toBeUndefined();
    expect(ownCgroupPath('0::\n')).toBeUndefined();
  });
});
