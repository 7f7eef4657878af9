import { execFileSync } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type SpawnedChild, type SpawnOptions } from 'sandboxd-spawn';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log('skipping the uid/gid/groups and priority tests of the native spawn: they need root');

interface Ran {
  pid: number;
  stdout: string;
  stderr: string;
  code: number;
  signal: number;
}

/** Runs `sh -c script` through the addon and collects its output and end. */
function sh(script: string, opts: Partial<SpawnOptions> = {}): Promise<Ran> {
  return run({ file: '/bin/sh', argv: ['/bin/sh', '-c', script], ...opts });
}

/** The addon's spawn as a promise of the started child. */
function start(opts: Partial<SpawnOptions> & { file: string }, onExit: (code: number, signal: number) => void = () => {}): Promise<SpawnedChild> {
  return new Promise((resolve, reject) => {
    spawn({ argv: [opts.file], envp: [`PATH=${process.env.PATH ?? '/usr/bin:/bin'}`], ...opts }, onExit, (err, child) => (child ? resolve(child) : reject(err)));
  });
}

async function run(opts: Partial<SpawnOptions> & { file: string }): Promise<Ran> {
  let end: [number, number] | undefined;
  let check = () => {};
  const child = await start(opts, (code, signal) => {
    end = [code, signal];
    check();
  });
  return new Promise((resolve, reject) => {
    const out = { stdout: '', stderr: '' };
    let open = 2;
    check = () => {
      if (end && open === 0) resolve({ pid: child.pid, ...out, code: end[0], signal: end[1] });
    };
    for (const [key, fd] of [['stdout', child.stdout], ['stderr', child.stderr]] as const) {
      const s = new Socket({ fd, readable: true, writable: false });
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out[key] += d));
      s.on('error', reject);
      s.on('close', () => {
        open--;
        check();
      });
    }
  });
}

/** Pids of this process's zombie children (state Z in /proc/<pid>/stat, ppid us). */
function zombies(): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state === 'Z' && Number(ppid) === process.pid) found.push(Number(name));
  }
  return found;
}

async function spawnError(opts: Partial<SpawnOptions> & { file: string }): Promise<NodeJS.ErrnoException> {
  const child = await start({ envp: [], ...opts }).catch((err: unknown) => err as NodeJS.ErrnoException);
  if (child instanceof Error) return child;
  throw new Error('spawn did not fail');
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-native-spawn-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the native spawn', () => {
  it('reports the exit code, with stdout and stderr apart', async () => {
    const r = await sh('echo out; echo err >&2; exit 3');
    expect(r).toMatchObject({ stdout: 'out\n', stderr: 'err\n', code: 3, signal: 0 });
  });

  it('reports a death by signal as the signal number', async () => {
    const r = await sh('kill -9 $$');
    expect(r).toMatchObject({ code: -1, signal: 9 });
  });

  it('runs the program with exactly the environment, argv and cwd given', async () => {
    const r = await run({ file: '/bin/sh', argv: ['/bin/sh', '-c', 'echo "$0 $1 $FOO"; pwd; env | wc -l', 'zero', 'one'], envp: ['FOO=bar'], cwd: dir });
    // `env | wc -l`: FOO plus what sh itself exports (PWD).
    expect(r.stdout.split('\n').slice(0, 2)).toEqual(['zero one bar', dir]);
    expect(Number(r.stdout.split('\n')[2])).toBeLessThanOrEqual(3);
  });

  it('gives the child only stdin, stdout and stderr, stdin from /dev/null unless asked', async () => {
    // ls, a child of the shell, lists the shell's descriptors (a glob in the shell would open one itself).
    const r = await sh('ls -l /proc/$$/fd');
    const fds = r.stdout.trim().split('\n').slice(1).map((l) => l.split(' ').slice(-3).filter((w) => w !== '->'));
    expect(fds.map(([fd]) => fd)).toEqual(['0', '1', '2']);
    expect(fds[0]![1]).toBe('/dev/null');
    expect(fds[1]![1]).toMatch(/^pipe:/);
    expect(fds[2]![1]).toMatch(/^pipe:/);
  });

  it('gives the child a stdin pipe that ends when the parent ends it', async () => {
    const child = await start({ file: '/bin/cat', argv: ['cat'], envp: [], stdin: true });
    const done = new Promise<string>((resolve) => {
      let out = '';
      const stdin = new Socket({ fd: child.stdin, readable: false, writable: true });
      const stdout = new Socket({ fd: child.stdout, readable: true, writable: false });
      new Socket({ fd: child.stderr, readable: true, writable: false }).resume();
      stdout.on('data', (d: Buffer) => (out += d.toString()));
      stdout.on('close', () => resolve(out));
      stdin.end('through cat\n');
    });
    expect(await done).toBe('through cat\n');
  });

  it('runs an executable file without #! under /bin/sh, as execvp does', async () => {
    const file = path.join(dir, 'no-shebang');
    writeFileSync(file, 'echo "ran as a script"\n');
    chmodSync(file, 0o755);
    expect((await run({ file })).stdout).toBe('ran as a script\n');
  });

  it('starts a new session when asked, so the child leads its process group', async () => {
    const own = await sh("cut -d' ' -f6 /proc/self/stat", { setsid: true });
    expect(Number(own.stdout)).toBe(own.pid);
    const shared = await sh("cut -d' ' -f6 /proc/self/stat");
    expect(Number(shared.stdout)).not.toBe(shared.pid);
  });

  describe('a setup that fails in the child', () => {
    it.each([
      ['a missing program', { file: path.join(os.tmpdir(), 'sbx-no-such-program') }, 'ENOENT', 'execve'],
      ['a file without the execute bit', { file: '/etc/passwd' }, 'EACCES', 'execve'],
      ['a directory', { file: '/' }, 'EACCES', 'execve'],
      ['a missing cwd', { file: '/bin/true', cwd: '/sbx-no-such-dir' }, 'ENOENT', 'chdir'],
      ['a cwd that is a file', { file: '/bin/true', cwd: '/etc/passwd' }, 'ENOTDIR', 'chdir'],
    ])('reports %s as a system error with its code, and leaves no zombie', async (_what, opts, code, syscall) => {
      const before = zombies();
      const err = await spawnError(opts);
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe(code);
      expect(err.syscall).toBe(syscall);
      expect(err.errno).toBeLessThan(0);
      expect(err.message).toContain(opts.file);
      expect(zombies()).toEqual(before);
    });

    it('throws a TypeError for options it cannot use', () => {
      const never = () => expect.fail('onSpawned ran for options the addon refused');
      expect(() => spawn({ file: '/bin/true', argv: [], envp: [] }, () => {}, never)).toThrow(TypeError);
      expect(() => spawn({ file: '/bin/true', argv: ['true'], envp: [], uid: 1 } as SpawnOptions, () => {}, never)).toThrow(TypeError);
    });
  });

  it('stops the child at a full pipe while the reader is paused, and loses nothing of 64 MiB', async () => {
    const size = 64 * 1024 * 1024;
    let exited = false;
    let received = 0;
    const child = await start({ file: '/usr/bin/head', argv: ['head', '-c', String(size), '/dev/zero'], envp: [] }, () => (exited = true));
    new Socket({ fd: child.stderr, readable: true, writable: false }).resume();
    const stdout = new Socket({ fd: child.stdout, readable: true, writable: false });
    const closed = new Promise<void>((resolve) => stdout.on('close', resolve));
    await new Promise<void>((resolve) => {
      stdout.once('data', (d: Buffer) => {
        received += d.length;
        stdout.pause();
        resolve();
      });
    });
    // Paused: the writer fills the pipe and sleeps in (anon_)pipe_write instead of running ahead.
    await new Promise<void>((resolve) => {
      const poll = () => (/pipe_write$/.test(readFileSync(`/proc/${child.pid}/wchan`, 'utf8')) ? resolve() : setTimeout(poll, 5));
      poll();
    });
    expect(exited).toBe(false);
    expect(received).toBeLessThan(size);
    stdout.on('data', (d: Buffer) => (received += d.length));
    stdout.resume();
    await closed;
    expect(received).toBe(size);
  });
});

describe.skipIf(!isRoot)('the native spawn as root', () => {
  it('switches uid, gid and exactly the supplementary groups given', async () => {
    const r = await sh('id -u; id -g; id -G', { uid: 1001, gid: 1001, groups: [1001, 27, 100] });
    expect(r.stdout.trim().split('\n')).toEqual(['1001', '1001', '1001 27 100']);
    const none = await sh('id -G', { uid: 1001, gid: 1001, groups: [] });
    expect(none.stdout.trim()).toBe('1001');
  });

  it('gives the child nice 0 and oom_score_adj 0 while the parent keeps -20 and its own, and joins a cgroup', () => {
    // A parent of its own, so this test's runner keeps its priority: nice -20, oom_score_adj raised to
    // 500 (raising needs no privilege; lowering it to -1000 needs CAP_SYS_RESOURCE, which a container may lack).
    const script = `
      const { setPriority, getPriority } = require('node:os');
      const fs = require('node:fs');
      const net = require('node:net');
      const { spawn } = require(${JSON.stringify(createRequire(import.meta.url).resolve('sandboxd-spawn'))});
      setPriority(-20);
      fs.writeFileSync('/proc/self/oom_score_adj', '500');
      const out = { child: '' };
      let warnings;
      spawn({
        file: '/bin/sh', argv: ['sh', '-c', "cut -d' ' -f19 /proc/self/stat; cat /proc/self/oom_score_adj; cat /proc/self/cgroup"],
        envp: [], nice: 0, oomScoreAdj: 0, cgroupProcs: process.argv[1],
      }, (code) => {
        out.parent = { nice: getPriority(), oom: Number(fs.readFileSync('/proc/self/oom_score_adj', 'utf8')), code, warnings };
      }, (err, child) => {
        if (err) throw err;
        warnings = child.warnings;
        const s = new net.Socket({ fd: child.stdout, readable: true, writable: false });
        new net.Socket({ fd: child.stderr, readable: true, writable: false }).resume();
        s.on('data', (d) => (out.child += d));
      });
      process.on('exit', () => process.stdout.write(JSON.stringify(out)));
    `;
    const group = ownCgroupDir();
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script, group ? `${group}/cgroup.procs` : '/nonexistent/cgroup.procs'], { encoding: 'utf8' })) as {
      child: string;
      parent: { nice: number; oom: number; code: number; warnings: { step: string; code: string }[] };
    };
    const [nice, oom, cgroup] = out.child.trim().split('\n');
    expect(Number(nice)).toBe(0);
    expect(Number(oom)).toBe(0);
    expect(out.parent).toMatchObject({ nice: -20, oom: 500, code: 0 });
    if (group) {
      expect(cgroup).toBe(`0::${group.slice('/sys/fs/cgroup'.length) || '/'}`);
      expect(out.parent.warnings).toEqual([]);
    } else {
      // No cgroup v2 to join here: the child still ran, and said why it did not join.
      expect(out.parent.warnings).toEqual([{ step: 'cgroup', code: 'ENOENT' }]);
    }
  });
});

/** A writable cgroup v2 directory the test process may move a child into (its own), or undefined. */
function ownCgroupDir(): string | undefined {
  try {
    const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
    if (own === undefined) return undefined;
    const dir = path.join('/sys/fs/cgroup', own);
    accessSync(path.join(dir, 'cgroup.procs'), constants.W_OK);
    return dir;
  } catch {
    return undefined;
  }
}
