import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { ChildSetup } from '../../system/survival.js';
import type { LaunchPlan } from './launch.js';
import type { NativeSpawn } from './native-spawn.js';
import type { FanoutLimits } from './output.js';
import { POST_EXIT_LIMIT_MS, PostExitBound } from './post-exit-bound.js';
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
  /**
   * Start the child with the native spawn (native/spawn): the plan's uid, gid and groups and these
   * steps are done in the child before its exec. Without it, Node's child_process starts the plan.
   */
  native?: { spawn: NativeSpawn; setup: ChildSetup };
}

/** What the pipe process reads and writes, however the child was started. */
interface ChildIo {
  stdin: Writable | undefined;
  stdout: Readable;
  stderr: Readable;
}

/**
 * A process with stdout, stderr (and optionally stdin) as pipes. After the exit its end waits for EOF on
 * every pipe, within the post-exit bound (post-exit-bound.ts).
 */
export class PipeProcess extends ManagedProcess {
  readonly isPty = false;
  private stdin: Writable | undefined;
  private readonly outputs: Readable[];
  private openOutputs: number;
  private status: ExitInfo | undefined;
  private readonly bound: PostExitBound;
  private cutPending = false;

  /** Spawns the child; a spawn failure rejects with the system error (ENOENT, EACCES, EAGAIN, ...). */
  static async spawn(opts: PipeSpawnOptions): Promise<PipeProcess> {
    if (opts.native) return PipeProcess.spawnNative(opts, opts.native);
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
    const proc = new PipeProcess(child.pid, { stdin: child.stdin ?? undefined, stdout: child.stdout!, stderr: child.stderr! }, opts);
    child.on('error', () => {});
    child.on('exit', (code, signal) => proc.exited(code, signal));
    return proc;
  }

  /**
   * The native spawn: its pipe ends wrapped as sockets (libuv pipes, so pause/resume are
   * backpressure as with child_process's streams), its exit reported from its pidfd.
   */
  private static async spawnNative(opts: PipeSpawnOptions, native: NonNullable<PipeSpawnOptions['native']>): Promise<PipeProcess> {
    const { plan } = opts;
    const exit: { to?: PipeProcess } = {};
    const child = await native.spawn(
      {
        file: plan.file,
        argv: [plan.file, ...plan.args],
        envp: Object.entries(opts.env).map(([k, v]) => `${k}=${v}`),
        cwd: opts.cwd,
        stdin: opts.stdin,
        setsid: opts.processGroup === true,
        ...(plan.uid === undefined ? {} : { uid: plan.uid, gid: plan.gid ?? plan.uid, groups: plan.groups ?? [plan.gid ?? plan.uid] }),
        ...native.setup,
      },
      // Runs on a later turn of the loop than the spawn's answer, after `exit.to` is set below.
      (code, signal) => exit.to?.exited(code, signal),
    );
    let io: ChildIo;
    try {
      io = {
        stdin: child.stdin >= 0 ? new Socket({ fd: child.stdin, readable: false, writable: true }) : undefined,
        stdout: new Socket({ fd: child.stdout, readable: true, writable: false }),
        stderr: new Socket({ fd: child.stderr, readable: true, writable: false }),
      };
    } catch (err) {
      // Not wrapped: nothing else will close them (the exit is still reported, to nobody).
      for (const fd of [child.stdin, child.stdout, child.stderr]) if (fd >= 0) closeSync(fd);
      throw err;
    }
    const proc = new PipeProcess(child.pid, io, opts);
    proc.warnings = child.warnings;
    exit.to = proc;
    return proc;
  }

  /** Best-effort steps the native spawn could not do in the child (it runs anyway); for the caller to log. */
  warnings: readonly { step: string; code: string }[] = [];

  private constructor(
    pid: number,
    io: ChildIo,
    opts: PipeSpawnOptions,
  ) {
    super(pid, opts.meta, opts.limits);
    this.bound = new PostExitBound(opts.postExitLimitMs ?? POST_EXIT_LIMIT_MS, () => this.maybeFinish());
    this.stdin = io.stdin;
    // A child that exits with unread input makes writes fail with EPIPE; writes report it themselves.
    this.stdin?.on('error', () => {});
    this.outputs = [io.stdout, io.stderr];
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
  }

  /** The kernel reported the child's end: an exit code or the signal that ended it. */
  private exited(code: number | null, signal: NodeJS.Signals | number | null): void {
    this.exitedAt = Date.now();
    this.status = exitInfo(code, signal);
    this.stdin?.destroy();
    this.stdin = undefined;
    this.bound.exit();
    this.maybeFinish();
  }

  pause(): void {
    if (!this.bound.pause()) return;
    for (const s of this.outputs) s.pause();
  }

  resume(): void {
    if (!this.bound.resume()) return;
    for (const s of this.outputs) s.resume();
    if (this.exitedAt !== undefined) this.maybeFinish();
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

  /** The deadline passed: output still held open by background children is cut once the child has exited. */
  override expire(): void {
    this.bound.expire();
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.status === undefined) return;
    if (this.openOutputs === 0) {
      this.bound.clear();
      this.finish(this.status);
      return;
    }
    if (this.cutPending || !this.bound.reached()) return;
    // Output that became readable meanwhile is read in the poll phase, before setImmediate callbacks.
    this.cutPending = true;
    setImmediate(() => {
      this.cutPending = false;
      if (this.openOutputs === 0) this.maybeFinish();
      else for (const s of this.outputs) s.destroy();
    });
  }
}
