// The daemon starts in two stages (src/main.ts binds every face's port and answers the plain /health; src/run.ts,
// the rest, takes over once loaded): what each answers, and that a daemon whose second stage cannot start does not
// stay up answering /health.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { daemonCommand, ENTRY, freePort, ROOT } from '../helpers/daemon.js';
import { watchJsonLog } from '../helpers/json-log.js';
import { routerKeys, signToken } from './picod-support.js';

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-stages-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Holds 127.0.0.1:`port` (and ::1, if there is one): a daemon that tried to bind it would fail. */
async function holdPort(port: number): Promise<() => Promise<void>> {
  const held: net.Server[] = [];
  for (const host of ['127.0.0.1', '::1']) {
    const srv = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      srv.once('error', () => resolve(false));
      srv.listen(port, host, () => resolve(true));
    });
    if (ok) held.push(srv);
  }
  return async () => void (await Promise.all(held.map((s) => new Promise((r) => s.close(r)))));
}

/** A process's nice value (field 19 of /proc/<pid>/stat). */
function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

function runOnce(args: string[]) {
  const [cmd, ...prefix] = daemonCommand();
  return spawnSync(cmd!, [...prefix, ...args], { encoding: 'utf8', timeout: 20_000 });
}

describe('--help, --version and a usage error', () => {
  it('answer as before and bind nothing (the port they name is held by the test)', async () => {
    const port = await freePort();
    const release = await holdPort(port);
    try {
      const help = runOnce(['--port', String(port), '--help']);
      expect(help.status).toBe(0);
      expect(help.stdout).toMatch(/^sandboxd: envd-compatible sandbox daemon/);
      const version = runOnce(['--port', String(port), '--version']);
      expect(version.status).toBe(0);
      expect(version.stdout).toMatch(/^sandboxd \d+\.\d+\.\d+ \(Node v\d+\.\d+\.\d+\)\n$/);
      const bad = runOnce(['--port', String(port), '--no-such-flag']);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/^sandboxd: Unknown option '--no-such-flag'/);
      expect(bad.stderr).toContain('Usage: sandboxd [options]');
      const badPort = runOnce(['--port', '70000']);
      expect(badPort.status).toBe(2);
      expect(badPort.stderr).toMatch(/^sandboxd: --port '70000' is not a port number/);
    } finally {
      await release();
    }
  });
});

/** Resolves once `port` accepts a connection on 127.0.0.1 (the first stage listens), or rejects when `child` exits. */
async function accepting(port: number, exited: Promise<unknown>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    if (gone) throw new Error('the daemon exited before it listened');
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

const onDist = process.env.SANDBOXD_EXECUTABLE ? 'these start dist/main.js with a loader hook; the executable has its own in test/executable' : undefined;
if (onDist) process.stdout.write(`startup-stages: skipping the dist/-only tests: ${onDist}\n`);

describe.skipIf(onDist)('requests while the second stage loads', () => {
  it('are a plain /health answered at once, and everything else answered by the daemon once it takes over, by its rules', async () => {
    const [envdPort, gatewayPort, picodPort] = [await freePort(), await freePort(), await freePort()];
    const gate = path.join(scratch, 'gate');
    const { privateKey, publicPem } = routerKeys();
    const token = 'stage-token';
    const child = spawn(
      process.execPath,
      ['--import', path.join(ROOT, 'test/helpers/stage2-gate.mjs'), ENTRY, '--port', String(envdPort), '--gateway-port', String(gatewayPort),
        '--picod-port', String(picodPort), '--access-token', token, '--instance-nonce', 'nonce-1', '--host', '127.0.0.1', '--no-cgroups', '--workspace', scratch],
      { env: { ...process.env, SANDBOXD_TEST_STAGE2_GATE: gate, PICOD_AUTH_PUBLIC_KEY: publicPem, SANDBOXD_GATEWAY_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit');
    const { logs, waitFor } = watchJsonLog(child.stdout, { context: () => stderr, exited: exited.then(() => 'daemon exited') });
    try {
      await accepting(envdPort, exited);
      const envd = `http://127.0.0.1:${envdPort}`;
      // The first stage answers the plain /health, with or without a token set, before anything is logged.
      const health = await fetch(`${envd}/health`);
      expect(health.status).toBe(204);
      expect(health.headers.get('cache-control')).toBe('no-store');

      let opened = false;
      const answered = <T>(p: Promise<T>) => p.then((v) => ({ v, afterGate: opened }));
      const json = { 'content-type': 'application/json' };
      const pending = {
        init: answered(fetch(`${envd}/init`, { method: 'POST', headers: { ...json, 'x-access-token': token }, body: JSON.stringify({ accessToken: token, envVars: { STAGED: '1' } }) })),
        rpc: answered(fetch(`${envd}/process.Process/List`, { method: 'POST', headers: { ...json, 'x-access-token': token }, body: '{}' })),
        noToken: answered(fetch(`${envd}/process.Process/List`, { method: 'POST', headers: json, body: '{}' })),
        withOrigin: answered(fetch(`${envd}/health`, { headers: { origin: 'http://example.test' } })),
        gateway: answered(fetch(`http://127.0.0.1:${gatewayPort}/health`)),
        picod: answered(fetch(`http://127.0.0.1:${picodPort}/health`)),
        // A child spawned by a request that waited: the daemon protected itself first (as root it raises its own
        // priority and gives every child the default nice back, through the same prelude as oom_score_adj).
        picodExecute: answered(
          fetch(`http://127.0.0.1:${picodPort}/api/execute`, {
            method: 'POST',
            headers: { ...json, authorization: `Bearer ${signToken(privateKey)}` },
            body: JSON.stringify({ command: ['sh', '-c', 'echo staged; cut -d" " -f19 /proc/self/stat'] }),
          }),
        ),
      };
      // Another plain /health is answered while they wait: the first stage reads requests, it answers only that one.
      expect((await fetch(`${envd}/health`)).status).toBe(204);
      expect(logs.filter((r) => typeof r.msg === 'string' && r.msg.endsWith('face listening'))).toEqual([]);
      opened = true;
      writeFileSync(gate, '');

      const init = await pending.init;
      expect(init).toMatchObject({ afterGate: true });
      expect(init.v.status).toBe(204);
      const rpc = await pending.rpc;
      expect(rpc.afterGate).toBe(true);
      expect(rpc.v.status).toBe(200);
      expect(await rpc.v.json()).toEqual({});
      const noToken = await pending.noToken;
      expect(noToken.afterGate).toBe(true);
      expect(noToken.v.status).toBe(401);
      const withOrigin = await pending.withOrigin;
      expect(withOrigin.afterGate).toBe(true);
      expect(withOrigin.v.status).toBe(204);
      expect(withOrigin.v.headers.get('access-control-allow-origin')).toBe('*');
      const gateway = await pending.gateway;
      expect(gateway.afterGate).toBe(true);
      expect(await gateway.v.json()).toEqual({ status: 'ok', instance_nonce: 'nonce-1' });
      const picod = await pending.picod;
      expect(picod.afterGate).toBe(true);
      expect(await picod.v.json()).toMatchObject({ status: 'ok', service: 'PicoD' });
      const exec = await pending.picodExecute;
      expect(exec.afterGate).toBe(true);
      expect(exec.v.status).toBe(200);
      expect(await exec.v.json()).toMatchObject({ stdout: 'staged\n0\n', exit_code: 0 });
      if (process.getuid?.() === 0) expect(niceOf(child.pid!)).toBe(-20);
      await waitFor((r) => r.msg === 'picod face listening', 'picod face listening');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  });
});

describe.skipIf(onDist)('a second stage that cannot load', () => {
  it('ends the daemon with a message and a non-zero exit, not a first stage answering /health for ever', async () => {
    // dist/ without its second stage's chunk: the first stage binds and answers, then the import fails.
    const dist = path.join(scratch, 'dist-broken');
    cpSync(path.join(ROOT, 'dist'), dist, { recursive: true });
    const chunk = readdirSync(dist).find((f) => /^run-[A-Za-z0-9]+\.js$/.test(f));
    expect(chunk).toBeDefined();
    rmSync(path.join(dist, chunk!));
    const port = await freePort();
    const child = spawn(process.execPath, [path.join(dist, 'main.js'), '--port', String(port), '--gateway-port', '0', '--no-cgroups'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(stderr).toMatch(/^sandboxd: Cannot find module '.*run-[A-Za-z0-9]+\.js'/);
  });
});
