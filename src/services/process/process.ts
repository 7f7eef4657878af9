import { Code, ConnectError } from '@connectrpc/connect';
import type { ProcessConfig } from '../../gen/process/process_pb.js';
import { OutputFanout, type FanoutLimits, type FlowControl } from './output.js';
import type { ExitInfo } from './status.js';

/** What every started process shares, whichever way its I/O is wired. */
export interface ProcessMeta {
  /** The config as the client sent it (List echoes it back). */
  config: ProcessConfig;
  tag: string | undefined;
}

/** A precondition error for input/resize calls that do not fit the process's kind or state. */
export function precondition(message: string): ConnectError {
  return new ConnectError(message, Code.FailedPrecondition);
}

/**
 * A started child process: its output fan-out, input, signals and its end.
 * Subclasses wire the I/O (pipes or a pty) and call `finish()` once the child has exited and its
 * output is fully pushed.
 */
export abstract class ManagedProcess implements FlowControl {
  readonly output: OutputFanout<ExitInfo>;
  readonly ended: Promise<ExitInfo>;
  private resolveEnded!: (info: ExitInfo) => void;
  private endInfo: ExitInfo | undefined;
  /** Set once the kernel reported the child's exit (its output may still be draining). */
  protected exitedAt: number | undefined;

  abstract readonly isPty: boolean;

  constructor(
    readonly pid: number,
    readonly meta: ProcessMeta,
    limits?: FanoutLimits,
  ) {
    this.output = new OutputFanout<ExitInfo>(this, limits);
    this.ended = new Promise<ExitInfo>((resolve) => (this.resolveEnded = resolve));
  }

  get end(): ExitInfo | undefined {
    return this.endInfo;
  }

  get hasExited(): boolean {
    return this.exitedAt !== undefined;
  }

  abstract pause(): void;
  abstract resume(): void;
  abstract writeStdin(data: Uint8Array): Promise<void>;
  abstract writePty(data: Uint8Array): Promise<void>;
  abstract closeStdin(): void;
  abstract resize(cols: number, rows: number): void;

  /** The process's deadline passed: stop waiting for output its background children hold open. */
  expire(): void {}

  /** Sends a signal unless the child is already gone (its pid may belong to someone else by now). */
  signal(signal: NodeJS.Signals): void {
    if (this.exitedAt !== undefined) return;
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  protected finish(info: ExitInfo): void {
    if (this.endInfo) return;
    this.endInfo = info;
    this.output.end(info);
    this.resolveEnded(info);
  }
}
