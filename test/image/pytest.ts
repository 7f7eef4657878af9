import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MANIFEST_ENV } from './sandbox.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** test/python's pinned venv (`npm run test:python:setup`): e2b, agentscope, pytest. */
export const PYTHON = path.join(REPO, 'test/python/.venv/bin/python');
/** The control plane as a process (test/image/control-plane-cli.ts), bundled by `npm run test:image`. */
export const CONTROL_PLANE_CLI = path.join(REPO, 'build/test-image/control-plane-cli.mjs');

export interface ControlPlaneProcess {
  apiUrl: string;
  sandboxUrl: string;
  apiKey: string;
  domain: string;
  /** E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY, E2B_DOMAIN */
  env: Record<string, string>;
  child: ChildProcess;
  /** Its stderr so far (one line per sandbox started, paused, killed). */
  log: () => string;
  /** SIGTERM: it kills its sandboxes and exits; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts the standalone control plane on the image test's manifest and waits for its JSON line. */
export async function spawnControlPlane(args: string[] = []): Promise<ControlPlaneProcess> {
  const manifest = process.env[MANIFEST_ENV];
  if (!manifest) throw new Error(`${MANIFEST_ENV} is not set: run with 'npm run test:image'`);
  const child = spawn(process.execPath, [CONTROL_PLANE_CLI, '--manifest', manifest, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the control plane exited with ${code}: ${log}`)));
  });
  const info = JSON.parse(first) as Omit<ControlPlaneProcess, 'child' | 'log' | 'stop'>;
  return {
    ...info,
    child,
    log: () => log,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

/**
 * Runs pytest on `file` (relative to `cwd`, default test/image/python) in production mode: `env` (a control
 * plane's E2B_* variables) set, E2B_DEBUG unset. Resolves with the exit code and the whole output.
 */
export function pytest(env: Record<string, string>, file: string, opts: { cwd?: string; python?: string; args?: string[] } = {}): Promise<{ code: number | null; output: string }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, PYTHONDONTWRITEBYTECODE: '1' };
  delete childEnv.E2B_DEBUG;
  const child = spawn(opts.python ?? PYTHON, ['-m', 'pytest', file, ...(opts.args ?? [])], { cwd: opts.cwd ?? path.join(REPO, 'test/image/python'), env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}
