import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { LaunchPlan } from './launch.js';
import type { FanoutLimits } from './output.js';
import { ManagedProcess, precondition, type ProcessMeta } from './process.js';
import { exitInfo, type ExitInfo } from './status.js';

export interface PipeSpawnOptions {
  plan: LaunchPlan;
  cwd: string;
  env: Record<string, string>;
  /** Keep stdin open as a pipe; otherwise the child reads /dev/null. */
  stdin: boolean;
  meta: ProcessMeta;
  limits?: FanoutLimits;
  /** Make the child a process group leader (setsid), so its pid names the group. */
  processGroup?: boolean;
  /** How long output may stay open after the exit; POST_EXIT_LIMIT_MS unless given. */
  postExitLimitMs?: number;
}

/**
 * After the child exits its pipes stay open while a background child still holds them (`(sleep 2;
 * echo late) & echo early`). As envd, the end comes after EOF on every pipe, so no output is lost.
 * The bound, so a daemonised child cannot hold the stream forever: the process's deadline (the
 * Start's timeout, as envd), and otherwise POST_EXIT_LIMIT_MS after the exit, counting only time
 * the output was flowing (time paused by a slow client's backpressure does not count).
 */
export const POST_EXIT_LIMIT_MS = 60_000;

/** A process with stdout, stderr (and optionally stdin) as pipes. */
export class PipeProcess extends ManagedProcess {
  readonly isPty = false;
  private stdin: Writable | undefined;
  private readonly outputs: Readable[];
  private openOutputs: number;
  private status: ExitInfo | undefined;
  private paused = false;
  private budgetLeft: number;
  private budgetSince = 0;
  private drainTimer: NodeJS.Timeout | undefined;
  private cutPending = false;
  private expired = false;

  /** Spawns the child; a spawn failure rejects with the system error (ENOENT, EACCES, EAGAIN, ...). */
  static async spawn(opts: PipeSpawnOptions): Promise<PipeProcess> {
    const child = spawn(opts.plan.file, opts.plan.args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      uid: opts.plan.uid,
      gid: opts.plan.gid,
      detached: opts.processGroup === true,
    });
    if (child.pid === undefined) {
      const [err] = (await once(child, 'error')) as [Error];
      throw err;
    }
    // Synchronous from here: the caller subscribes before any output event can fire.
    return new PipeProcess(child, child.pid, opts);
  }

  private constructor(
    child: ChildProcess,
    pid: number,
    opts: PipeSpawnOptions,
  ) {
    super(pid, opts.meta, opts.limits);
    this.budgetLeft = opts.postExitLimitMs ?? POST_EXIT_LIMIT_MS;
    this.stdin = child.stdin ?? undefined;
    // A child that exits with unread input makes writes fail with EPIPE; writes report it themselves.
    this.stdin?.on('error', () => {});
    this.outputs = [child.stdout!, child.stderr!];
    this.openOutputs = this.outputs.length;
    const kinds = ['stdout', 'stderr'] as const;
    this.outputs.forEach((stream, i) => {
      stream.on('data', (data: Buffer) => {
        this.output.push({ kind: kinds[i]!, data });
      });
      stream.on('error', () => {});
      stream.on('close', () => {
        this.openOutputs--;
        this.maybeFinish();
      });
    });
    child.on('error', () => {});
    child.on('exit', (code, signal) => {
      this.exitedAt = Date.now();
      this.status = exitInfo(code, signal);
      this.stdin?.destroy();
      this.stdin = undefined;
      this.budgetSince = this.exitedAt;
      this.maybeFinish();
    });
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    for (const s of this.outputs) s.pause();
    if (this.exitedAt !== undefined) {
      this.budgetLeft -= Date.now() - this.budgetSince;
      this.clearDrainTimer();
    }
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    for (const s of this.outputs) s.resume();
    if (this.exitedAt !== undefined) {
      this.budgetSince = Date.now();
      this.maybeFinish();
    }
  }

  async writeStdin(data: Uint8Array): Promise<void> {
    const stdin = this.stdin;
    if (!stdin || stdin.writableEnded || stdin.destroyed) throw precondition('stdin not enabled or closed');
    if (data.length === 0) return;
    await new Promise<void>((resolve, reject) => {
      stdin.write(data, (err) => {
        if (!err) resolve();
        else if ((err as NodeJS.ErrnoException).code === 'EPIPE' || stdin.destroyed) reject(precondition(`error writing to stdin of process '${this.pid}': the process closed its input`));
        else reject(err);
      });
    });
  }

  writePty(): Promise<void> {
    return Promise.reject(precondition('tty not assigned to process — input should be written to the stdin, not the tty'));
  }

  closeStdin(): void {
    const stdin = this.stdin;
    this.stdin = undefined;
    stdin?.end();
  }

  resize(): void {
    throw precondition('error resizing tty: tty not assigned to process');
  }

  private clearDrainTimer(): void {
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
  }

  /** The deadline passed: output still held open by background children is cut once the child has exited. */
  override expire(): void {
    this.expired = true;
    this.clearDrainTimer();
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.status === undefined) return;
    if (this.openOutputs === 0) {
      this.clearDrainTimer();
      this.finish(this.status);
      return;
    }
    if (this.drainTimer || this.cutPending || this.paused && !this.expired) return;
    const budget = this.expired ? 0 : this.budgetLeft - (Date.now() - this.budgetSince);
    if (budget > 0) {
      this.drainTimer = setTimeout(() => {
        this.drainTimer = undefined;
        this.maybeFinish();
      }, budget);
      return;
    }
    // Output that became readable meanwhile is read in the poll phase, before setImmediate callbacks.
    this.cutPending = true;
    setImmediate(() => {
      this.cutPending = false;
      if (this.openOutputs === 0) this.maybeFinish();
      else for (const s of this.outputs) s.destroy();
    });
  }
}
