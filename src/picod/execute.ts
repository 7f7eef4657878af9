import { stat } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { ConnectError } from '@connectrpc/connect';
import { Hono } from 'hono';
import type { FaceEnv } from '../face.js';
import { ProcessConfigSchema } from '../gen/process/process_pb.js';
import type { Logger } from '../log.js';
import { ensureDirs } from '../services/filesystem/ensure-dirs.js';
import type { OutputKind } from '../services/process/output.js';
import type { ProcessRegistry } from '../services/process/registry.js';
import type { User } from '../system/users.js';
import { jsonObjectBody, readLimitedBody, type Incoming } from './body.js';
import { DurationError, parseGoDuration } from './duration.js';
import { PicodError, rfc3339Nano } from './errors.js';
import { Workspace, WorkspaceError } from './workspace.js';

/** GNU timeout's exit code, which PicoD reports for a command that ran out of time. */
export const TIMEOUT_EXIT_CODE = 124;

/** PicoD's default when the request names no timeout. */
const DEFAULT_TIMEOUT_NS = 60_000_000_000n;

/**
 * Bytes of stdout and of stderr kept for the answer. PicoD buffers without limit; here output past
 * the cap is read and dropped (the command is neither slowed nor stopped) and stderr says how much.
 */
export const MAX_OUTPUT_BYTES = 8 * 1024 * 1024;

/** setTimeout's ceiling (~24.8 days); longer timeouts are held to it. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ExecuteDeps {
  workspace: Workspace;
  registry: ProcessRegistry;
  /** The user commands run as (the daemon's default user). */
  user: () => User;
  /** Variables every command starts with before the request's own (PicoD passes its own environment). */
  baseEnv: Readonly<Record<string, string>>;
  logger: Logger;
  /** Process groups of the commands started here that may still have members, for the face's close. */
  groups: Set<number>;
}

interface ExecuteRequest {
  command: string[];
  timeout: string;
  working_dir: string;
  env: Record<string, string>;
}

function parseRequest(body: Buffer): ExecuteRequest {
  const { command, timeout, working_dir: workingDir, env } = jsonObjectBody(body);
  if (command === undefined || command === null) {
    throw new PicodError(400, "Key: 'ExecuteRequest.Command' Error:Field validation for 'Command' failed on the 'required' tag");
  }
  if (!Array.isArray(command) || !command.every((a) => typeof a === 'string')) throw new PicodError(400, "field 'command' must be an array of strings");
  if (timeout !== undefined && timeout !== null && typeof timeout !== 'string') throw new PicodError(400, "field 'timeout' must be a string");
  if (workingDir !== undefined && workingDir !== null && typeof workingDir !== 'string') throw new PicodError(400, "field 'working_dir' must be a string");
  if (env !== undefined && env !== null && (typeof env !== 'object' || Array.isArray(env) || !Object.values(env).every((v) => typeof v === 'string'))) {
    throw new PicodError(400, "field 'env' must be an object of strings");
  }
  return {
    command: command as string[],
    timeout: (timeout as string | null | undefined) ?? '',
    working_dir: (workingDir as string | null | undefined) ?? '',
    env: (env as Record<string, string> | null | undefined) ?? {},
  };
}

/** "after 30 seconds" as PicoD words it (whole seconds), with the fraction kept for sub-second timeouts. */
function timedOutMessage(ns: bigint): string {
  const seconds = Number(ns) / 1e9;
  const shown = Number.isInteger(seconds) ? String(seconds) : String(Number(seconds.toFixed(3)));
  return `Command timed out after ${shown} seconds`;
}

/** Collects one stream's bytes up to MAX_OUTPUT_BYTES and counts the rest. */
class BoundedOutput {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  dropped = 0;

  add(data: Buffer): void {
    const room = MAX_OUTPUT_BYTES - this.kept;
    if (room <= 0) {
      this.dropped += data.length;
      return;
    }
    const part = data.length > room ? data.subarray(0, room) : data;
    this.chunks.push(part);
    this.kept += part.length;
    this.dropped += data.length - part.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Whether any process is left in the group (a background child of a command that has ended, say). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** `POST /api/execute`: runs argv (no shell) in the workspace and answers with its output once it ends. */
export function executeRoutes(deps: ExecuteDeps): Hono<FaceEnv> {
  return new Hono<FaceEnv>().post('/api/execute', async (c) => {
    const req = parseRequest(await readLimitedBody(c.env.incoming as Incoming));
    if (req.command.length === 0) throw new PicodError(400, 'command cannot be empty');
    let timeoutNs = DEFAULT_TIMEOUT_NS;
    if (req.timeout !== '') {
      try {
        timeoutNs = parseGoDuration(req.timeout);
      } catch (err) {
        if (err instanceof DurationError) throw new PicodError(400, `Invalid timeout format: ${err.message}`);
        throw err;
      }
    }

    const user = deps.user();
    let cwd = deps.workspace.root;
    if (req.working_dir !== '') {
      try {
        cwd = await deps.workspace.resolve(req.working_dir);
      } catch (err) {
        if (err instanceof WorkspaceError) throw new PicodError(400, `Invalid working directory: ${err.message}`);
        throw err;
      }
      const exists = await stat(cwd).then(
        () => true,
        (err: NodeJS.ErrnoException) => err.code !== 'ENOENT',
      );
      if (!exists) {
        try {
          await ensureDirs(cwd, user.uid, user.gid);
        } catch (err) {
          throw new PicodError(500, `Failed to create working directory: ${(err as Error).message}`);
        }
      }
    }

    const startNs = process.hrtime.bigint();
    const startWall = BigInt(Date.now()) * 1_000_000n;
    const answer = (stdout: string, stderr: string, exitCode: number) => {
      const elapsed = process.hrtime.bigint() - startNs;
      return c.json({
        stdout,
        stderr,
        exit_code: exitCode,
        duration: Number(elapsed) / 1e9,
        start_time: rfc3339Nano(startWall),
        end_time: rfc3339Nano(startWall + elapsed),
      });
    };
    // An expired deadline stops the command before it starts, as Go's exec does with a done context.
    if (timeoutNs <= 0n) return answer('', timedOutMessage(timeoutNs), TIMEOUT_EXIT_CODE);

    const [cmd, ...args] = req.command as [string, ...string[]];
    const config = create(ProcessConfigSchema, { cmd, args, cwd, envs: { ...deps.baseEnv, ...req.env } });
    let started;
    try {
      started = await deps.registry.start({ user, config, stdin: false, processGroup: true });
    } catch (err) {
      // PicoD answers a command that could not start with exit code 1 and the reason in stderr.
      const message = err instanceof ConnectError ? err.rawMessage : (err as Error).message;
      return answer('', message, 1);
    }
    const { process: proc, output } = started;
    for (const pgid of deps.groups) if (!groupAlive(pgid)) deps.groups.delete(pgid);
    deps.groups.add(proc.pid);
    let timedOut = false;
    const deadline = setTimeout(
      () => {
        timedOut = true;
        deps.logger.info({ pid: proc.pid, timeout: req.timeout }, 'picod command timed out; killing its process group');
        killGroup(proc.pid);
      },
      Math.min(Number(timeoutNs / 1_000_000n), MAX_TIMER_MS),
    );
    const streams: Record<OutputKind, BoundedOutput> = { stdout: new BoundedOutput(), stderr: new BoundedOutput(), pty: new BoundedOutput() };
    let exitCode = -1;
    try {
      for (;;) {
        const delivery = output.take();
        if (delivery === undefined) {
          await output.wait(60_000);
          continue;
        }
        if (delivery.type === 'data') streams[delivery.chunk.kind].add(delivery.chunk.data);
        else if (delivery.type === 'end') {
          exitCode = delivery.value.exitCode;
          break;
        } else throw delivery.error;
      }
    } finally {
      clearTimeout(deadline);
      output.close();
    }
    let stderr = streams.stderr.text();
    for (const kind of ['stdout', 'stderr'] as const) {
      const { dropped } = streams[kind];
      if (dropped === 0) continue;
      if (stderr !== '' && !stderr.endsWith('\n')) stderr += '\n';
      stderr += `[sandboxd: ${kind} truncated: ${dropped} bytes after the first ${MAX_OUTPUT_BYTES} were dropped]\n`;
    }
    if (timedOut) {
      exitCode = TIMEOUT_EXIT_CODE;
      stderr += timedOutMessage(timeoutNs);
    }
    return answer(streams.stdout.text(), stderr, exitCode);
  });
}
