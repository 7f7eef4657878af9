import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../log.js';
import { withSurvivalPrelude } from '../system/survival.js';

export interface StdioServerLaunch {
  command: string;
  args: string[];
  /** Merged over the SDK's default inherited variables (HOME, PATH, USER, ...), as the SDK does. */
  env: Record<string, string> | undefined;
  cwd: string | undefined;
}

const STDERR_TAIL_BYTES = 2048;
/** How long a server gets to exit on its own after stdin closes, then after SIGTERM. */
const GRACE_MS = { stdin: 1000, term: 2000 };

/**
 * The MCP SDK's stdio client transport, with one difference: the server runs in its own process group
 * and closing the transport ends the whole group. A server started through `sh -c`, `npx` or `uv run`
 * leaves no grandchildren behind when its registration goes or the daemon stops.
 */
export class ProcessGroupStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private child: ChildProcessByStdio<Writable, Readable, Readable> | undefined;
  private readonly buffer = new ReadBuffer();
  private stderrTail = '';
  private exited: Promise<void> | undefined;
  private closing = false;
  private drained: Promise<void> | undefined;
  /** How the process ended, once it has. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    private readonly launch: StdioServerLaunch,
    private readonly logger: Logger,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last lines the server wrote to stderr (for error messages). */
  get stderr(): string {
    return this.stderrTail.trim();
  }

  /** Why the process is gone, in words (`context` follows the cause); undefined while it runs. */
  describeExit(context = '', withStderr = true): string | undefined {
    if (!this.exit) return undefined;
    const how = this.exit.signal ? `was killed by ${this.exit.signal}` : `exited with code ${this.exit.code}`;
    const tail = withStderr ? this.stderr.slice(-500) : '';
    return `process ${this.child?.pid} ${how}${context}` + (tail ? `; stderr: ${tail}` : '');
  }

  async start(): Promise<void> {
    if (this.child) throw new Error('transport already started');
    const { command, args, env, cwd } = this.launch;
    if (cwd !== undefined) {
      const st = await stat(cwd).catch(() => undefined);
      if (!st?.isDirectory()) throw new Error(`cwd '${cwd}' is not an existing directory`);
    }
    const childEnv = { ...getDefaultEnvironment(), ...env };
    // Resolved here, not by the prelude's shell, so a missing command is still an error and not exit 127.
    // Synchronous, so the spawn stays in the tick start() was called in (a close() right after sees the child).
    const plan = withSurvivalPrelude({ file: findCommand(command, childEnv.PATH, cwd), args });
    const child = spawn(plan.file, plan.args, {
      env: childEnv,
      cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      // A new session and process group, so close() can signal every process the server started.
      detached: true,
    });
    this.child = child;
    this.exited = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        // Helpers the server left behind in its group go with it (they may also hold its pipes open).
        if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
        resolve();
      }),
    );
    child.once('close', () => this.onclose?.());
    child.stdout.on('data', (chunk: Buffer) => {
      try {
        this.buffer.append(chunk);
      } catch (err) {
        // A message beyond the buffer limit: the stream cannot be resynchronised (the SDK closes too).
        this.onerror?.(err as Error);
        void this.close();
        return;
      }
      for (;;) {
        try {
          const msg = this.buffer.readMessage();
          if (msg === null) break;
          this.onmessage?.(msg);
        } catch (err) {
          // A line that is not JSON-RPC (a server logging to stdout) is reported and skipped.
          this.onerror?.(err as Error);
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.stderrTail = (this.stderrTail + text).slice(-STDERR_TAIL_BYTES);
      this.logger.debug({ pid: child.pid, stderr: text.trimEnd() }, 'mcp server stderr');
    });
    child.stdin.on('error', (err) => this.onerror?.(err));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') reject(new Error(`command '${command}' not found`));
        else if (err.code === 'EACCES') reject(new Error(`command '${command}' is not executable`));
        else reject(err);
      });
    });
    child.on('error', (err) => this.onerror?.(err));
  }

  send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.child?.stdin;
    if (!stdin || this.exit || stdin.destroyed) return Promise.reject(new Error('Not connected'));
    if (stdin.write(serializeMessage(message))) return Promise.resolve();
    // Every writer waiting on a full pipe shares one 'drain' listener.
    return (this.drained ??= new Promise<void>((resolve) => stdin.once('drain', resolve)).finally(() => (this.drained = undefined)));
  }

  /** Closes stdin, then SIGTERM, then SIGKILL to the whole group, each after a grace period. */
  async close(): Promise<void> {
    const child = this.child;
    const pid = child?.pid;
    if (!child || pid === undefined || this.exit) return; // never started, or already gone
    if (this.closing) return this.exited;
    this.closing = true;
    child.stdin.end();
    if (await settlesWithin(this.exited, GRACE_MS.stdin)) return;
    signalGroup(pid, 'SIGTERM');
    if (await settlesWithin(this.exited, GRACE_MS.term)) return;
    signalGroup(pid, 'SIGKILL');
    await this.exited;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

async function settlesWithin(p: Promise<void> | undefined, ms: number): Promise<boolean> {
  const ac = new AbortController();
  const timedOut = sleep(ms, false, { signal: ac.signal }).catch(() => false);
  const done = await Promise.race([p?.then(() => true), timedOut]);
  ac.abort();
  return done === true;
}

/**
 * `command` as execvp would find it (PATH for a bare name, else relative to `cwd`), with the errors
 * the spawn would give: "not found" (ENOENT), "not executable" (EACCES: found, but no x bit).
 */
function findCommand(command: string, searchPath: string | undefined, cwd: string | undefined): string {
  const candidates = command.includes('/')
    ? [path.resolve(cwd ?? process.cwd(), command)]
    : (searchPath ?? '').split(':').filter((d) => d !== '').map((d) => path.resolve(cwd ?? process.cwd(), d, command));
  let denied = false;
  for (const file of candidates) {
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) continue;
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      denied = true;
    }
  }
  throw new Error(denied ? `command '${command}' is not executable` : `command '${command}' not found`);
}
