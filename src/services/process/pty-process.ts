import { readSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { IPty } from 'node-pty';
import type { LaunchPlan } from './launch.js';
import type { FanoutLimits } from './output.js';
import { POST_EXIT_LIMIT_MS, PostExitBound } from './post-exit-bound.js';
import { ManagedProcess, precondition, type ProcessMeta } from './process.js';
import { PtyWriter } from './pty-writer.js';
import { exitInfo, type ExitInfo } from './status.js';

/**
 * node-pty's UnixTerminal beyond the IPty typings: its master fd, the socket reading it, and 'close'
 * once that fd is closed. Patched (patches/node-pty+*.patch), it reports the child's exit at once
 * and leaves the master open: the end of the output is ours to find.
 */
interface UnixTerminal {
  readonly fd: number;
  readonly _socket: Socket;
  on(event: 'close', listener: () => void): void;
}

export interface PtySpawnOptions {
  plan: LaunchPlan;
  cwd: string;
  env: Record<string, string>;
  cols: number;
  rows: number;
  meta: ProcessMeta;
  limits?: FanoutLimits;
  /** How long the terminal may stay open after the exit; POST_EXIT_LIMIT_MS (as for pipes) unless given. */
  postExitLimitMs?: number;
}

/** Terminal type when the request sets no TERM (the SDK sends xterm-256color itself). */
const DEFAULT_TERM = 'xterm-256color';

/** Size limits of a tty (struct winsize holds 16-bit values); 0 means the default. */
function dimension(n: number, fallback: number): number {
  if (!Number.isFinite(n) || n <= 0) return fallback;
  return Math.min(Math.floor(n), 0xffff);
}

/**
 * A process on a pseudo-terminal: one output stream, input as keystrokes, resizable.
 *
 * Its end, as envd's: after the exit, once the master reads EIO (every holder of the terminal, a
 * background child too, has closed it), so no output is lost. Two traps on the way: libuv takes a
 * short read with the hangup flag for the end of the stream while the kernel may still hold output
 * (the last lines of a command that exits at once), so what is left is read here at that 'end'; and
 * a background child may keep the terminal for ever, so the wait is bounded as the pipe path's is:
 * the deadline, or the post-exit limit of time the output was flowing. At the bound the master is
 * closed, which hangs the terminal up for whoever still holds it.
 */
export class PtyProcess extends ManagedProcess {
  readonly isPty = true;
  private readonly input: PtyWriter;
  private readonly master: Socket;
  private readonly fd: number;
  private status: ExitInfo | undefined;
  private drained = false;
  private readonly bound: PostExitBound;

  /**
   * Spawns the child on a new pty; node-pty reaps it and reports its exit.
   * node-pty loads on the first PTY (about 4 MiB a daemon without terminals never pays).
   */
  static async spawn(opts: PtySpawnOptions): Promise<PtyProcess> {
    const { spawn: spawnPty } = await import('node-pty');
    const env = { ...opts.env, TERM: opts.env.TERM || DEFAULT_TERM };
    const term = spawnPty(opts.plan.file, opts.plan.args, {
      name: env.TERM,
      cols: dimension(opts.cols, 80),
      rows: dimension(opts.rows, 24),
      cwd: opts.cwd,
      env,
      encoding: null,
      uid: opts.plan.uid,
      gid: opts.plan.gid,
    });
    return new PtyProcess(term, opts);
  }

  private constructor(
    private readonly term: IPty,
    opts: PtySpawnOptions,
  ) {
    super(term.pid, opts.meta, opts.limits);
    this.bound = new PostExitBound(opts.postExitLimitMs ?? POST_EXIT_LIMIT_MS, () => this.maybeFinish());
    const unix = term as unknown as UnixTerminal;
    this.fd = unix.fd;
    this.master = unix._socket;
    this.input = new PtyWriter(unix.fd);
    // EIO (drained), or closed by us: the fd number may be reused, so no read or write may reach it after.
    unix.on('close', () => {
      this.input.close();
      this.masterDone();
    });
    // A premature end from libuv (see above); the fd is still open while 'end' is emitted.
    this.master.on('end', () => {
      this.readRest();
      this.masterDone();
    });
    // With encoding null node-pty hands out Buffers, whatever its typings say.
    term.onData((data) => this.output.push({ kind: 'pty', data: data as unknown as Buffer }));
    term.onExit(({ exitCode, signal }) => this.exited(exitCode, signal ?? null));
  }

  /** The kernel reported the child's end; the terminal may still hold output. */
  private exited(code: number, signal: number | null): void {
    this.exitedAt = Date.now();
    this.status = exitInfo(code, signal);
    this.bound.exit();
    this.maybeFinish();
  }

  pause(): void {
    if (!this.bound.pause()) return;
    this.term.pause();
  }

  resume(): void {
    if (!this.bound.resume()) return;
    this.term.resume();
    if (this.exitedAt !== undefined) this.maybeFinish();
  }

  /** The deadline passed: a terminal still held open by background children is cut once the child has exited. */
  override expire(): void {
    this.bound.expire();
    this.maybeFinish();
  }

  writeStdin(): Promise<void> {
    return Promise.reject(precondition('tty assigned to process — input should be written to the pty, not the stdin'));
  }

  async writePty(data: Uint8Array): Promise<void> {
    if (this.exitedAt !== undefined) throw precondition(`error writing to tty of process '${this.pid}': the process has exited`);
    if (data.length > 0) this.input.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  closeStdin(): void {
    throw precondition('cannot close stdin for PTY process — send Ctrl+D (0x04) instead');
  }

  resize(cols: number, rows: number): void {
    if (this.exitedAt !== undefined) throw precondition(`error resizing tty: process '${this.pid}' has exited`);
    this.term.resize(dimension(cols, 80), dimension(rows, 24));
  }

  /**
   * Reads what the master holds right now, synchronously: once the slave side hung up a read gives
   * output or EIO and never waits; while a background child holds it, EAGAIN says nothing is there.
   */
  private readRest(): void {
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, buf);
      } catch {
        return;
      }
      if (n === 0) return;
      this.output.push({ kind: 'pty', data: Buffer.from(buf.subarray(0, n)) });
    }
  }

  private masterDone(): void {
    if (this.drained) return;
    this.drained = true;
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.status === undefined) return;
    if (this.drained) {
      this.bound.clear();
      this.finish(this.status);
      return;
    }
    if (!this.bound.reached()) return;
    // Output readable now is kept, in order: what the socket buffered (each read emits 'data'), then the kernel's.
    while (this.master.read() !== null);
    this.readRest();
    this.master.destroy();
    this.masterDone();
  }
}
