import { Code, ConnectError } from '@connectrpc/connect';
import type { ProcessConfig, ProcessSelector } from '../../gen/process/process_pb.js';
import type { Logger } from '../../log.js';
import { childSetup, withSurvivalPrelude } from '../../system/survival.js';
import type { User } from '../../system/users.js';
import type { ServiceDeps } from '../context.js';
import { cwdPath, namedExecutable, processEnv, resolveCwd, resolveExecutable } from './environment.js';
import { launchPlan } from './launch.js';
import { nativeSpawn } from './native-spawn.js';
import type { FanoutLimits, OutputSubscription } from './output.js';
import { PipeProcess } from './pipe-process.js';
import { ManagedProcess } from './process.js';
import { PtyProcess } from './pty-process.js';
import type { ExitInfo } from './status.js';

/** How long an exited process's end event stays available to Connect, as envd (30 s). */
export const EXIT_RETENTION_MS = 30_000;

/** A process that has ended; Connect still answers with its start and end events for a while. */
export interface RetainedExit {
  pid: number;
  tag: string | undefined;
  end: ExitInfo;
}

export interface StartSpec {
  user: User;
  config: ProcessConfig;
  tag?: string;
  pty?: { cols: number; rows: number };
  /** Keep stdin open (pipes only). */
  stdin: boolean;
  /** Kill the process (SIGKILL) after this many ms; undefined or 0: no deadline. */
  timeoutMs?: number;
  /** Start it as the leader of its own process group (pipes only), so the whole group can be signalled. */
  processGroup?: boolean;
}

export interface RegistryOptions {
  retentionMs?: number;
  limits?: FanoutLimits;
  /** Time SIGTERM gets in closeAll() before SIGKILL follows. */
  shutdownGraceMs?: number;
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** A spawn failure as envd answers it: resource shortages are retryable, the rest is a bad request. */
function spawnError(err: unknown, cmd: string): ConnectError {
  if (err instanceof ConnectError) return err;
  const code = errnoCode(err);
  const message = `error starting process '${cmd}': ${(err as Error).message ?? String(err)}`;
  if (code && ['EAGAIN', 'ENOMEM', 'EMFILE', 'ENFILE', 'ENOSPC'].includes(code)) {
    return new ConnectError(message, Code.ResourceExhausted);
  }
  return new ConnectError(message, Code.InvalidArgument);
}

/**
 * A native spawn whose child could not enter cwd or exec the program: the checks the other spawns make
 * up front give the same errors (`cwd '/x' does not exist`, `/x: permission denied`). Returns when they
 * find nothing wrong (an ACL, a missing interpreter): the spawn's own error stands.
 */
async function explainNativeFailure(err: unknown, spec: StartSpec, cwd: string, searchPath: string | undefined, defaultWorkdir: string | undefined): Promise<void> {
  const step = (err as NodeJS.ErrnoException | undefined)?.syscall;
  if (step === 'chdir') await resolveCwd(spec.config.cwd, spec.user, defaultWorkdir);
  else if (step === 'execve') await resolveExecutable(spec.config.cmd, cwd, searchPath, spec.user);
}

/**
 * Every process the daemon started, by pid: the live ones, and for EXIT_RETENTION_MS after their
 * end, what they ended with. Processes outlive the streams that started them.
 */
export class ProcessRegistry {
  private readonly live = new Map<number, ManagedProcess>();
  private readonly retained = new Map<number, { exit: RetainedExit; timer: NodeJS.Timeout }>();
  private closing = false;
  private readonly warned = new Set<string>();
  private readonly retentionMs: number;
  private readonly shutdownGraceMs: number;

  constructor(
    private readonly deps: Pick<ServiceDeps, 'state' | 'logger'>,
    private readonly opts: RegistryOptions = {},
  ) {
    this.retentionMs = opts.retentionMs ?? EXIT_RETENTION_MS;
    this.shutdownGraceMs = opts.shutdownGraceMs ?? 2000;
  }

  private get logger(): Logger {
    return this.deps.logger;
  }

  /**
   * Starts a process and subscribes to its output in the same tick, so the caller sees every byte.
   * Rejects with a ConnectError: invalid_argument for a bad cwd or binary, resource_exhausted when
   * the system is out of processes or descriptors.
   */
  async start(spec: StartSpec): Promise<{ process: ManagedProcess; output: OutputSubscription<ExitInfo> }> {
    if (this.closing) throw new ConnectError('the daemon is shutting down', Code.Unavailable);
    const { user, config } = spec;
    const { defaultWorkdir } = this.deps.state;
    // Pipes start through the native spawn when it loads: credentials and the prelude's steps in the child, one exec.
    const spawn = spec.pty ? undefined : await nativeSpawn(this.logger);
    const env = processEnv(user, this.deps.state.envVars, config.envs);
    // The native spawn's child enters cwd and execs the program as the user, and fails with the kernel's
    // answer: a program named by its path and the cwd are checked only when it fails (below). Checked up
    // front, each stat is a hop to the thread pool and back, which on a loaded machine may wait for a CPU.
    const cwd = spawn ? cwdPath(config.cwd, user, defaultWorkdir) : await resolveCwd(config.cwd, user, defaultWorkdir);
    const file = (spawn ? namedExecutable(config.cmd, cwd) : undefined) ?? (await resolveExecutable(config.cmd, cwd, env.PATH, user));
    const meta = { config, tag: spec.tag };

    let proc: ManagedProcess;
    try {
      if (spawn) {
        const plan = launchPlan(user, file, config.args, { native: true });
        const pipe = await PipeProcess.spawn({ plan, cwd, env, stdin: spec.stdin, meta, limits: this.opts.limits, processGroup: spec.processGroup, native: { spawn, setup: childSetup('user') } });
        this.reportWarnings(pipe.warnings);
        proc = pipe;
      } else {
        const plan = withSurvivalPrelude(launchPlan(user, file, config.args, { nodeSpawn: !spec.pty }), spec.pty ? 'pty' : 'user');
        if (plan.degraded) this.logger.warn({ user: user.name }, 'setpriv not found: process runs without its supplementary groups');
        proc = spec.pty
          ? await PtyProcess.spawn({ plan, cwd, env, cols: spec.pty.cols, rows: spec.pty.rows, meta, limits: this.opts.limits })
          : await PipeProcess.spawn({ plan, cwd, env, stdin: spec.stdin, meta, limits: this.opts.limits, processGroup: spec.processGroup });
      }
    } catch (err) {
      if (spawn) await explainNativeFailure(err, spec, cwd, env.PATH, defaultWorkdir);
      throw spawnError(err, [config.cmd, ...config.args].join(' '));
    }
    // Only microtasks pass between spawn and here: output (an I/O event) cannot arrive before the subscription.
    const output = proc.output.subscribe();
    this.track(proc, spec.timeoutMs);
    if (this.closing) proc.signal('SIGKILL');
    return { process: proc, output };
  }

  /** A best-effort step (oom_score_adj, cgroup, nice) a child could not take is logged once per step and code. */
  private reportWarnings(warnings: readonly { step: string; code: string }[]): void {
    for (const w of warnings) {
      const key = `${w.step}:${w.code}`;
      if (this.warned.has(key)) continue;
      this.warned.add(key);
      this.logger.warn({ step: w.step, code: w.code }, 'a child could not take its survival setting; it runs without it (logged once)');
    }
  }

  private track(proc: ManagedProcess, timeoutMs: number | undefined): void {
    const { pid } = proc;
    const { tag } = proc.meta;
    this.forget(pid);
    this.live.set(pid, proc);
    // Logged on the loop's check phase, after the start (or end) event has gone out in the same turn:
    // serialising a line costs as much as writing the event, and the client waits for the event.
    setImmediate(() => this.logger.info({ pid, tag, cmd: proc.meta.config.cmd, args: proc.meta.config.args, pty: proc.isPty, timeoutMs }, 'process started'));
    let deadline: NodeJS.Timeout | undefined;
    if (timeoutMs !== undefined && timeoutMs > 0) {
      deadline = setTimeout(() => {
        this.logger.info({ pid, tag, timeoutMs }, 'process deadline reached; killing it');
        proc.signal('SIGKILL');
        proc.expire();
      }, timeoutMs);
      deadline.unref();
    }
    void proc.ended.then((end) => {
      if (deadline) clearTimeout(deadline);
      setImmediate(() => this.logger.info({ pid, tag, exitCode: end.exitCode, status: end.status }, 'process ended'));
      if (this.live.get(pid) !== proc) return;
      this.live.delete(pid);
      const timer = setTimeout(() => {
        if (this.retained.get(pid)?.exit === exit) this.retained.delete(pid);
      }, this.retentionMs);
      timer.unref();
      const exit: RetainedExit = { pid, tag: proc.meta.tag, end };
      this.retained.set(pid, { exit, timer });
    });
  }

  private forget(pid: number): void {
    const old = this.retained.get(pid);
    if (!old) return;
    clearTimeout(old.timer);
    this.retained.delete(pid);
  }

  /** Running processes, oldest first. */
  list(): ManagedProcess[] {
    return [...this.live.values()];
  }

  /** The running process a selector names; not_found otherwise (as envd). */
  get(selector: ProcessSelector | undefined): ManagedProcess {
    const found = this.lookup(selector);
    if (found instanceof ManagedProcess) return found;
    throw notFound(selector);
  }

  /** The running process, or the retained end of a recently exited one, for Connect. */
  attach(selector: ProcessSelector | undefined): ManagedProcess | RetainedExit {
    const found = this.lookup(selector);
    if (!found) throw notFound(selector);
    return found;
  }

  private lookup(selector: ProcessSelector | undefined): ManagedProcess | RetainedExit | undefined {
    const sel = selector?.selector;
    switch (sel?.case) {
      case 'pid':
        return this.live.get(sel.value) ?? this.retained.get(sel.value)?.exit;
      case 'tag': {
        for (const p of this.live.values()) if (p.meta.tag === sel.value) return p;
        for (const { exit } of this.retained.values()) if (exit.tag === sel.value) return exit;
        return undefined;
      }
      default:
        throw new ConnectError('process selector must name a pid or a tag', Code.InvalidArgument);
    }
  }

  /**
   * Ends every running process: SIGTERM, then SIGKILL for those still running after the grace
   * period. New starts are refused from the first call on. Resolves once all have ended.
   */
  async closeAll(): Promise<void> {
    this.closing = true;
    const running = this.list();
    if (running.length === 0) return;
    this.logger.info({ count: running.length }, 'ending child processes');
    for (const p of running) p.signal('SIGTERM');
    const all = Promise.all(running.map((p) => p.ended));
    const graceOver = await Promise.race([all.then(() => false), delay(this.shutdownGraceMs).then(() => true)]);
    if (graceOver) {
      for (const p of this.list()) p.signal('SIGKILL');
      await Promise.race([all, delay(this.shutdownGraceMs)]);
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function notFound(selector: ProcessSelector | undefined): ConnectError {
  const sel = selector?.selector;
  if (sel?.case === 'tag') return new ConnectError(`process with tag ${sel.value} not found`, Code.NotFound);
  return new ConnectError(`process with pid ${sel?.value ?? 0} not found`, Code.NotFound);
}

const registries = new WeakMap<object, ProcessRegistry>();

/** The daemon's one registry (keyed by its deps, so each daemon in a process has its own). */
export function registryFor(deps: ServiceDeps): ProcessRegistry {
  let reg = registries.get(deps);
  if (!reg) {
    reg = new ProcessRegistry(deps);
    registries.set(deps, reg);
  }
  return reg;
}

/** Ends the daemon's child processes; call from the daemon's close(). */
export async function closeProcesses(deps: ServiceDeps): Promise<void> {
  await registries.get(deps)?.closeAll();
}
