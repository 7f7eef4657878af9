import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENTRY, ROOT } from '../helpers/daemon.js';
import { watchJsonLog } from '../helpers/json-log.js';

/** ≥ 5,000 by default (CI); SANDBOXD_FUZZ_CASES asks for more, SANDBOXD_FUZZ_SEED for another run. */
const CASES = Number(process.env.SANDBOXD_FUZZ_CASES ?? 5000);
const SEED = Number(process.env.SANDBOXD_FUZZ_SEED ?? 1);
const PORT = 49983;

/**
 * The daemon in network, mount and pid namespaces of its own: a tmpfs scratch directory is the only
 * place it can write (the root and /sys are remounted read-only in its mount namespace), only its
 * own children share its pid namespace, and nothing it listens on or dials leaves its loopback.
 */
function isolatedDaemon(scratch: string): ChildProcess {
  const setup = [
    'ip link set lo up',
    `mount -t tmpfs -o size=64m tmpfs '${scratch}'`,
    'mount -o remount,bind,ro /',
    'mount -o remount,bind,ro /sys',
    'exec "$0" "$@"',
  ].join(' && ');
  return spawn(
    'unshare',
    ['-n', '-m', '-p', '-f', '--kill-child', '--mount-proc', '--propagation', 'private', 'sh', '-c', setup, process.execPath, ENTRY, '--port', String(PORT), '--gateway-port', '0', '--log-level', 'warn'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SANDBOXD_ACCESS_TOKEN: '' } },
  );
}

function childPid(parent: number): number {
  const children = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  if (children.length !== 1) throw new Error(`expected one child of unshare, found '${children.join(' ')}'`);
  return Number(children[0]);
}

interface Summary {
  cases: number;
  findingCount: number;
  findings: { what: string; why: string; detail?: string }[];
  unhealthy: number;
  alive: boolean;
}

describe('the fuzz run', () => {
  let dir: string;
  let unshare: ChildProcess;
  let daemonPid: number;
  let stderr = '';
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-fuzz-'));
    mkdirSync(path.join(dir, 'scratch'));
    await build({ entryPoints: [path.join(ROOT, 'test/fuzz/client.ts')], bundle: true, platform: 'node', format: 'esm', outfile: path.join(dir, 'client.mjs'), logLevel: 'warning' });
    unshare = isolatedDaemon(path.join(dir, 'scratch'));
    unshare.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    // warn level: the one line we wait for is info, so ask for it through the daemon's readiness instead.
    const exited = new Promise<string>((resolve) => unshare.once('exit', (code) => resolve(`daemon exited with ${code}`)));
    watchJsonLog(unshare.stdout!, { context: () => stderr, exited });
    const until = Date.now() + 20_000;
    for (;;) {
      try {
        daemonPid = childPid(unshare.pid!);
        if (readFileSync(`/proc/${daemonPid}/cmdline`, 'utf8').includes(ENTRY) && readFileSync(`/proc/${daemonPid}/net/tcp`, 'utf8').includes(`:${PORT.toString(16).toUpperCase()} 00000000:0000 0A`)) break;
      } catch {
        // not there yet
      }
      if (Date.now() > until) throw new Error(`the isolated daemon did not start listening: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 60_000);
  afterAll(async () => {
    if (unshare && unshare.exitCode === null) {
      // The daemon is its namespace's init: SIGTERM to it is a clean shutdown, and unshare follows.
      const exited = new Promise((r) => unshare.once('exit', r));
      try {
        process.kill(daemonPid, 'SIGTERM');
      } catch {
        unshare.kill('SIGKILL');
      }
      const kill = setTimeout(() => unshare.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(kill);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`${CASES} malformed requests (seed ${SEED}): no crash, no 5xx or fault code, no hang over 10 s`, async () => {
    const client = spawn('nsenter', [`--net=/proc/${daemonPid}/ns/net`, process.execPath, path.join(dir, 'client.mjs'), String(PORT), path.join(dir, 'scratch'), String(CASES), String(SEED)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    client.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
    expect(code, out).toBe(0);
    const summary = JSON.parse(out.trim().split('\n').pop()!) as Summary;
    if (summary.findingCount > 0) console.log(JSON.stringify(summary.findings, null, 1));
    expect(summary.cases).toBeGreaterThanOrEqual(CASES);
    expect(summary.findingCount, 'findings').toBe(0);
    expect(summary.unhealthy, '/health checks that failed').toBe(0);
    expect(summary.alive, '/health after the run').toBe(true);
    expect(unshare.exitCode, `daemon exit; stderr: ${stderr}`).toBeNull();
    // The daemon process itself, not only its namespace's init, is alive.
    expect(readFileSync(`/proc/${daemonPid}/cmdline`, 'utf8')).toContain(ENTRY);
  }, 180_000);
});
