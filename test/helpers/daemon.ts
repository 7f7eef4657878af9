import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchJsonLog, type JsonLog } from './json-log.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ENTRY = path.join(ROOT, 'dist/main.js');

/**
 * What the suites start: dist/main.js on the Node running the tests, unless SANDBOXD_EXECUTABLE names the single
 * executable (`npm run package` → build/sandboxd; `npm run test:executable` runs suites against it) or
 * SANDBOXD_NODE names another Node for dist/main.js.
 */
export function daemonCommand(): string[] {
  if (process.env.SANDBOXD_EXECUTABLE) return [path.resolve(ROOT, process.env.SANDBOXD_EXECUTABLE)];
  return [process.env.SANDBOXD_NODE || process.execPath, ENTRY];
}

export interface RunningDaemon {
  child: ChildProcess;
  port: number;
  gatewayPort: number | undefined;
  url: string;
  gatewayUrl: string;
  logs: Record<string, unknown>[];
  /** Resolves with the first log record (seen already or later) that passes `test`. */
  waitFor: JsonLog['waitFor'];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface DaemonOptions {
  /** envd port; 0 (the default) picks a free one. SDK suites use 49983. */
  port?: number;
  /** gateway port: 'off' (the default here), 'free' for a free one, or a number. */
  gatewayPort?: number | 'off' | 'free';
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /**
   * A command the daemon runs under, e.g. `['unshare', '-m', 'sh', '-c', 'mount ... && exec "$0" "$@"']`;
   * node and its arguments are appended. It must exec the daemon so signals reach it.
   */
  wrap?: string[];
  /** The daemon's command (default daemonCommand()): e.g. `[build/sandboxd]`. */
  command?: string[];
  /**
   * Let the daemon manage cgroups (default off: `--no-cgroups`, so that no test moves processes in
   * the machine's own cgroups; a test that turns it on starts the daemon in a scratch cgroup).
   */
  cgroups?: boolean;
}

/** Starts the built daemon as a child process and resolves once both faces listen. */
export async function startDaemon(opts: DaemonOptions = {}): Promise<RunningDaemon> {
  const [daemon, ...entry] = opts.command ?? daemonCommand();
  const args = [...entry, '--port', String(opts.port ?? 0), '--log-level', 'debug'];
  const gw = opts.gatewayPort ?? 'off';
  args.push('--gateway-port', gw === 'off' ? '0' : String(gw === 'free' ? await freePort() : gw));
  if (!opts.cgroups) args.push('--no-cgroups');
  args.push(...(opts.args ?? []));
  const [command, ...prefix] = [...(opts.wrap ?? []), daemon!];
  const child = spawn(command!, [...prefix, ...args], {
    env: { ...process.env, SANDBOXD_ACCESS_TOKEN: '', SANDBOXD_GATEWAY_TOKEN: '', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<string>((resolve) => child.once('exit', (code) => resolve(`daemon exited with ${code}`)));
  const { logs, waitFor } = watchJsonLog(child.stdout!, { context: () => stderr, exited });
  let port: number;
  let gatewayPort: number | undefined;
  try {
    port = (await waitFor((r) => r.msg === 'envd face listening', 'envd face listening')).port as number;
    if (gw !== 'off') gatewayPort = (await waitFor((r) => r.msg === 'gateway face listening', 'gateway face listening')).port as number;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const url = `http://127.0.0.1:${port}`;
  // The log line comes after listen(); /health proves requests are served.
  const res = await fetch(`${url}/health`);
  if (res.status !== 204) throw new Error(`daemon /health answered ${res.status}`);
  return {
    child,
    port,
    gatewayPort,
    url,
    gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
    logs,
    waitFor,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const [code] = (await once(child, 'exit')) as [number | null];
      clearTimeout(kill);
      return code;
    },
  };
}

/** A port that was free a moment ago (the gateway flag treats 0 as 'off', so tests pick one). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** The port the SDK's debug mode always dials. */
export const SDK_PORT = 49983;
