import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandExitError, SandboxError, type CommandHandle, type Sandbox } from 'e2b';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startSdkDaemon } from '../helpers/sdk.js';

const enc = new TextEncoder();

function ensureTestUser(): void {
  try {
    execFileSync('id', ['user'], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['-m', '-s', '/bin/bash', 'user']);
  }
}

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A terminal whose output is collected as text. */
async function openTerminal(sandbox: Sandbox, opts: { cols?: number; rows?: number; envs?: Record<string, string>; user?: string } = {}) {
  const term = { out: '', handle: undefined as unknown as CommandHandle };
  const decoder = new TextDecoder();
  term.handle = await sandbox.pty.create({
    cols: opts.cols ?? 80,
    rows: opts.rows ?? 24,
    envs: opts.envs,
    user: opts.user,
    onData: (d) => void (term.out += decoder.decode(d, { stream: true })),
  });
  return term;
}

describe('pty through the SDK', () => {
  let d: RunningDaemon;
  let sandbox: Sandbox;

  beforeAll(async () => {
    ensureTestUser();
    ({ daemon: d, sandbox } = await startSdkDaemon());
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('creates a terminal with envs, takes input, runs on a tty and exits 0', async () => {
    const t = await openTerminal(sandbox, { envs: { ABC: '123' } });
    await sandbox.pty.sendInput(t.handle.pid, enc.encode('echo "v=$ABC term=$TERM"; tty; exit\n'));
    const r = await t.handle.wait();
    expect(r.exitCode).toBe(0);
    expect(t.out).toContain('v=123 term=xterm-256color');
    expect(t.out).toMatch(/\/dev\/pts\/\d+/);
  });

  it('starts with the requested size and follows a resize', async () => {
    const t = await openTerminal(sandbox, { cols: 91, rows: 33 });
    await sandbox.pty.sendInput(t.handle.pid, enc.encode('echo "size=$(tput cols)x$(tput lines)"\n'));
    await until(() => t.out.includes('size=91x33'), 'initial size');
    await sandbox.pty.resize(t.handle.pid, { cols: 120, rows: 40 });
    await sandbox.pty.sendInput(t.handle.pid, enc.encode('echo "size=$(tput cols)x$(tput lines)"; exit\n'));
    await t.handle.wait();
    expect(t.out).toContain('size=120x40');
  });

  it('runs as the requested user', async () => {
    const t = await openTerminal(sandbox, { user: 'user' });
    await sandbox.pty.sendInput(t.handle.pid, enc.encode('echo "who=$(id -un) home=$HOME"; exit\n'));
    await t.handle.wait();
    expect(t.out).toContain('who=user home=/home/user');
  });

  it('ends the shell on Ctrl-D', async () => {
    const t = await openTerminal(sandbox);
    // Ctrl-D means EOF to the shell only once it reads the terminal; wait until it answered once.
    await sandbox.pty.sendInput(t.handle.pid, enc.encode('echo "ready=$((6*7))"\n'));
    await until(() => t.out.includes('ready=42'), 'the shell to be ready');
    await sandbox.pty.sendInput(t.handle.pid, new Uint8Array([4]));
    expect((await t.handle.wait()).exitCode).toBe(0);
  });

  it('delivers input larger than the terminal holds at once, whole and in order', async () => {
    const t = await openTerminal(sandbox);
    // Raw mode passes every byte as it is; the terminal takes a few KiB until `head` reads, so most of
    // the input has to wait in the daemon and go in as the terminal makes room.
    await sandbox.pty.sendInput(t.handle.pid, enc.encode("stty raw -echo; echo RE''ADY; head -c 262144 | sha256sum; exit\n"));
    await until(() => t.out.includes('READY'), 'the terminal in raw mode');
    const input = Buffer.alloc(256 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7 + (i >> 10)) & 0xff;
    for (let off = 0; off < input.length; off += 64 * 1024) {
      await sandbox.pty.sendInput(t.handle.pid, input.subarray(off, off + 64 * 1024));
    }
    expect((await t.handle.wait()).exitCode).toBe(0);
    expect(t.out).toContain(createHash('sha256').update(input).digest('hex'));
  });

  it('delivers every byte of a burst printed right before the shell exits, before the end', async () => {
    // 384 KiB of 'Z' (octal 132, so the echoed command line holds none) and no newline the terminal would double.
    const burst = 384 * 1024;
    for (let run = 0; run < 10; run++) {
      const t = await openTerminal(sandbox);
      await sandbox.pty.sendInput(t.handle.pid, enc.encode(`head -c ${burst} /dev/zero | tr '\\0' '\\132'; exit\n`));
      expect((await t.handle.wait()).exitCode).toBe(0);
      expect({ run, bytes: t.out.split('Z').length - 1 }).toEqual({ run, bytes: burst });
    }
  });

  it('kills a terminal, which then is gone', async () => {
    const t = await openTerminal(sandbox);
    expect(await sandbox.pty.kill(t.handle.pid)).toBe(true);
    const err = await t.handle.wait().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandExitError);
    expect((err as CommandExitError).error).toBe('signal: killed');
    expect((await sandbox.commands.list()).some((p) => p.pid === t.handle.pid)).toBe(false);
    expect(await sandbox.pty.kill(t.handle.pid)).toBe(false);
  });

  it('reconnects to a terminal and sees its later output', async () => {
    const t = await openTerminal(sandbox);
    await t.handle.disconnect();
    let again = '';
    const handle = await sandbox.pty.connect(t.handle.pid, { onData: (d) => void (again += new TextDecoder().decode(d)) });
    await sandbox.pty.sendInput(t.handle.pid, enc.encode('echo "back=$((40+2))"; exit\n'));
    await handle.wait();
    expect(again).toContain('back=42');
  });

  describe('bad input', () => {
    it('refuses to close stdin of a terminal and stdin writes to it', async () => {
      const t = await openTerminal(sandbox);
      const close = await sandbox.commands.closeStdin(t.handle.pid).catch((e: unknown) => e);
      expect(close).toBeInstanceOf(SandboxError);
      expect((close as Error).message).toContain('cannot close stdin for PTY process');
      await expect(sandbox.commands.sendStdin(t.handle.pid, 'x')).rejects.toThrow(/tty assigned to process/);
      await sandbox.pty.kill(t.handle.pid);
    });

    it('refuses to resize a plain command or send it pty input', async () => {
      const cmd = await sandbox.commands.run('sleep 30', { background: true });
      const resize = await sandbox.pty.resize(cmd.pid, { cols: 100, rows: 30 }).catch((e: unknown) => e);
      expect(resize).toBeInstanceOf(SandboxError);
      expect((resize as Error).message).toContain('tty not assigned to process');
      await expect(sandbox.pty.sendInput(cmd.pid, enc.encode('x'))).rejects.toThrow(/tty not assigned/);
      await cmd.kill();
    });
  });
});
