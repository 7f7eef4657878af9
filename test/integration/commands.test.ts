import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthenticationError, CommandExitError, InvalidArgumentError, NotFoundError, TimeoutError, type Sandbox } from 'e2b';
import type { RunningDaemon } from '../helpers/daemon.js';
import { ensureTestUserWithGroup } from '../helpers/users.js';
import { startSdkDaemon } from '../helpers/sdk.js';


/** Resolves once `check` holds, polling; rejects after `ms`. */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Children of `pid` in state Z (defunct), from /proc. */
function zombieChildren(pid: number): string[] {
  const zombies: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the parenthesised command: state, ppid, ...
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(rest[1]) === pid && rest[0] === 'Z') zombies.push(stat);
  }
  return zombies;
}

describe('commands through the SDK', () => {
  let d: RunningDaemon;
  let sandbox: Sandbox;
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'sbx-cmd-'));

  beforeAll(async () => {
    ensureTestUserWithGroup();
    ({ daemon: d, sandbox } = await startSdkDaemon());
  });
  afterAll(async () => {
    await d?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('runs echo and returns stdout and stderr separately', async () => {
    const r = await sandbox.commands.run('echo "Hello, World!"; echo oops >&2');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('Hello, World!\n');
    expect(r.stderr).toBe('oops\n');
    expect(r.error).toBeUndefined();
  });

  it('raises CommandExitError with the exit code, the status and the output so far', async () => {
    const err = await sandbox.commands.run('echo partial; echo bad >&2; exit 3').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandExitError);
    const e = err as CommandExitError;
    expect(e.exitCode).toBe(3);
    expect(e.error).toBe('exit status 3');
    expect(e.stdout).toBe('partial\n');
    expect(e.stderr).toBe('bad\n');
  });

  it('applies envs and cwd to one command only', async () => {
    const r = await sandbox.commands.run('echo "$FOO"; pwd', { envs: { FOO: 'bar' }, cwd: '/tmp' });
    expect(r.stdout).toBe('bar\n/tmp\n');
    const next = await sandbox.commands.run('echo "[$FOO]"; pwd');
    expect(next.stdout).toBe('[]\n/root\n');
  });

  it('gives each command the user defaults and the /init variables, which request envs override', async () => {
    const init = await fetch(`${d.url}/init`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ envVars: { FROM_INIT: 'yes', SHARED: 'init' } }),
    });
    expect(init.status).toBe(204);
    const r = await sandbox.commands.run('echo "$HOME $USER $LOGNAME $SHELL $E2B_SANDBOX $FROM_INIT $SHARED"; echo "$PATH"', {
      envs: { SHARED: 'request' },
    });
    const [line, pathLine] = r.stdout.split('\n');
    expect(line).toBe('/root root root /bin/bash true yes request');
    expect(pathLine).toContain('/usr/bin');
  });

  it("runs as the SDK's user with uid, gid, supplementary groups and home", async () => {
    const r = await sandbox.commands.run('id -un; id -gn; id -Gn; pwd; echo "$HOME"', { user: 'user' });
    const [name, group, groups, cwd, home] = r.stdout.trim().split('\n');
    expect(name).toBe('user');
    expect(group).toBe('user');
    expect(groups!.split(' ')).toContain('sbxtestgrp');
    expect(groups!.split(' ')).not.toContain('root');
    expect(cwd).toBe('/home/user');
    expect(home).toBe('/home/user');
    const asRoot = await sandbox.commands.run('id -u', { user: 'root' });
    expect(asRoot.stdout).toBe('0\n');
  });

  it('runs as a user with no supplementary group (as the image has) without any of root\'s groups, with and without a PTY', async () => {
    try {
      execFileSync('id', ['sbxplain'], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['-m', '-s', '/bin/bash', 'sbxplain']);
    }
    const uid = execFileSync('id', ['-u', 'sbxplain'], { encoding: 'utf8' }).trim();
    const script = 'id -u; id -g; id -G; grep ^Groups: /proc/self/status';
    const r = await sandbox.commands.run(`${script}; cat /proc/self/oom_score_adj`, { user: 'sbxplain' });
    const [u, g, groups, status, oom] = r.stdout.trim().split('\n');
    expect(u).toBe(uid);
    // The daemon's OOM protection is undone for the child even though it starts as the user.
    expect(oom).toBe('0');
    expect(groups!.split(' ')).toEqual([g]);
    expect(status!.replace('Groups:', '').trim().split(/\s+/).filter(Boolean)).not.toContain('0');
    let out = '';
    const pty = await sandbox.pty.create({ cols: 80, rows: 24, user: 'sbxplain', onData: (d) => void (out += Buffer.from(d).toString()) });
    await sandbox.pty.sendInput(pty.pid, new TextEncoder().encode(`${script}; exit\n`));
    await pty.wait().catch(() => undefined);
    expect(out).toMatch(/Groups:[^\S\r\n]*\d+/);
    expect(/Groups:([^\r\n]*)/.exec(out)![1]!.trim().split(/\s+/)).not.toContain('0');
  });

  it('streams output before the command ends', async () => {
    const gate = path.join(scratch, 'gate-stream');
    let seen = '';
    const handle = await sandbox.commands.run(`echo first; while [ ! -e ${gate} ]; do sleep 0.02; done; echo second`, {
      background: true,
      onStdout: (s) => void (seen += s),
    });
    await until(() => seen.includes('first'), 'first line');
    expect(handle.exitCode).toBeUndefined();
    expect(seen).not.toContain('second');
    writeFileSync(gate, '');
    const r = await handle.wait();
    expect(r.stdout).toBe('first\nsecond\n');
  });

  it('delivers 32 MiB of output complete and in order', async () => {
    const size = 32 * 1024 * 1024;
    let chunks = 0;
    const r = await sandbox.commands.run(`seq 1 100000000 | head -c ${size}`, { onStdout: () => void chunks++ });
    expect(r.stdout.length).toBe(size);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('1');
    const lastFull = lines[lines.length - 2]!;
    expect(Number(lastFull)).toBe(lines.length - 1);
    expect(chunks).toBeGreaterThan(1);
  });

  it('lists a background command, connects to it, kills it, and forgets it', async () => {
    const handle = await sandbox.commands.run('sleep 30', { background: true });
    const listed = await sandbox.commands.list();
    const info = listed.find((p) => p.pid === handle.pid);
    expect(info).toMatchObject({ cmd: '/bin/bash', args: ['-l', '-c', 'sleep 30'] });

    const attached = await sandbox.commands.connect(handle.pid);
    expect(attached.pid).toBe(handle.pid);

    expect(await sandbox.commands.kill(handle.pid)).toBe(true);
    expect((await sandbox.commands.list()).some((p) => p.pid === handle.pid)).toBe(false);

    for (const h of [handle, attached]) {
      const err = await h.wait().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CommandExitError);
      expect((err as CommandExitError).exitCode).toBe(-1);
      expect((err as CommandExitError).error).toBe('signal: killed');
    }
    expect(await sandbox.commands.kill(handle.pid)).toBe(false);
    expect(await sandbox.commands.kill(999_999)).toBe(false);
  });

  it('keeps a command running after disconnect and delivers later output on reconnect', async () => {
    const gate = path.join(scratch, 'gate-reconnect');
    let first = '';
    const handle = await sandbox.commands.run(`echo one; while [ ! -e ${gate} ]; do sleep 0.02; done; echo two`, {
      background: true,
      onStdout: (s) => void (first += s),
    });
    await until(() => first.includes('one'), 'first output');
    await handle.disconnect();
    expect((await sandbox.commands.list()).some((p) => p.pid === handle.pid)).toBe(true);

    let second = '';
    const again = await sandbox.commands.connect(handle.pid, { onStdout: (s) => void (second += s) });
    writeFileSync(gate, '');
    const r = await again.wait();
    expect(r.exitCode).toBe(0);
    expect(second).toBe('two\n');
    expect(first).toBe('one\n');
  });

  it('feeds stdin and ends cat with closeStdin', async () => {
    const cat = await sandbox.commands.run('cat', { background: true, stdin: true });
    await sandbox.commands.sendStdin(cat.pid, 'hello ');
    await cat.sendStdin('world');
    await sandbox.commands.closeStdin(cat.pid);
    const r = await cat.wait();
    expect(r.stdout).toBe('hello world');
  });

  it('gives a command without stdin an empty input, so cat ends at once', async () => {
    const r = await sandbox.commands.run('cat; echo done');
    expect(r.stdout).toBe('done\n');
  });

  it('refuses input to a command started without stdin', async () => {
    const h = await sandbox.commands.run('sleep 30', { background: true });
    await expect(sandbox.commands.sendStdin(h.pid, 'x')).rejects.toThrow(/stdin not enabled or closed/);
    await h.kill();
  });

  it('kills a command at its timeoutMs and raises TimeoutError', async () => {
    await expect(sandbox.commands.run('sleep 20', { timeoutMs: 700 })).rejects.toBeInstanceOf(TimeoutError);
    const h = await sandbox.commands.run('sleep 20', { background: true, timeoutMs: 700 });
    await expect(h.wait()).rejects.toBeInstanceOf(TimeoutError);
    await until(async () => !(await sandbox.commands.list()).some((p) => p.pid === h.pid), 'the timed-out command to be gone');
  });

  it('runs 50 commands at once, each with its own output', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => sandbox.commands.run(`echo ${i}`, { user: 'user' })));
    results.forEach((r, i) => expect(r.stdout).toBe(`${i}\n`));
  });

  it('leaves no zombie children behind', async () => {
    await Promise.all(Array.from({ length: 20 }, () => sandbox.commands.run('true', { user: 'user' })));
    const bg = await sandbox.commands.run('sleep 30', { background: true, user: 'user' });
    await sandbox.commands.kill(bg.pid);
    expect(zombieChildren(d.child.pid!)).toEqual([]);
  });

  describe('bad input', () => {
    it('runs an empty command as an empty bash script', async () => {
      const r = await sandbox.commands.run('');
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe('');
    });

    it('reports a missing binary as exit 127 from the shell', async () => {
      const err = (await sandbox.commands.run('no-such-binary-sbx').catch((e: unknown) => e)) as CommandExitError;
      expect(err).toBeInstanceOf(CommandExitError);
      expect(err.exitCode).toBe(127);
      expect(err.stderr).toMatch(/not found/);
    });

    it('rejects a missing cwd as invalid argument', async () => {
      const err = await sandbox.commands.run('pwd', { cwd: '/no/such/dir' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toContain("cwd '/no/such/dir' does not exist");
    });

    it('rejects an unknown user', async () => {
      await expect(sandbox.commands.run('true', { user: 'no-such-user-sbx' })).rejects.toBeInstanceOf(AuthenticationError);
    });

    it('answers unknown pids with not found', async () => {
      await expect(sandbox.commands.connect(999_999)).rejects.toBeInstanceOf(NotFoundError);
      await expect(sandbox.commands.sendStdin(999_999, 'x')).rejects.toBeInstanceOf(NotFoundError);
      await expect(sandbox.commands.closeStdin(999_999)).rejects.toBeInstanceOf(NotFoundError);
    });

    it('keeps serving after bad requests', async () => {
      const r = await sandbox.commands.run('echo still here');
      expect(r.stdout).toBe('still here\n');
    });
  });
});
