import type { IPty } from 'node-pty';
import type { LaunchPlan } from './launch.js';
import type { FanoutLimits } from './output.js';
import { ManagedProcess, precondition, type ProcessMeta } from './process.js';
import { PtyWriter } from './pty-writer.js';
import { exitInfo } from './status.js';

/** node-pty's UnixTerminal beyond the IPty typings: its master fd, and 'close' once that fd is closed. */
interface UnixTerminal {
  readonly fd: number;
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
}

/** Terminal type when the request sets no TERM (the SDK sends xterm-256color itself). */
const DEFAULT_TERM = 'xterm-256color';

/** Size limits of a tty (struct winsize holds 16-bit values); 0 means the default. */
function dimension(n: number, fallback: number): number {
  if (!Number.isFinite(n) || n <= 0) return fallback;
  return Math.min(Math.floor(n), 0xffff);
}

/** A process on a pseudo-terminal: one output stream, input as keystrokes, resizable. */
export class PtyProcess extends ManagedProcess {
  readonly isPty = true;
  private paused = false;
  private readonly input: PtyWriter;

  /**
   * Spawns the child on a new pty; node-pty reaps it and reports its exit after the pty closes.
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
    const unix = term as unknown as UnixTerminal;
    this.input = new PtyWriter(unix.fd);
    // The fd number may be reused once closed: no write may reach it after that.
    unix.on('close', () => this.input.close());
    // With encoding null node-pty hands out Buffers, whatever its typings say.
    term.onData((data) => this.output.push({ kind: 'pty', data: data as unknown as Buffer }));
    term.onExit(({ exitCode, signal }) => {
      this.exitedAt = Date.now();
      this.finish(exitInfo(exitCode, signal ?? null));
    });
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.term.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.term.resume();
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
}
