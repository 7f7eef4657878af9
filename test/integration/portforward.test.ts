import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENTRY } from '../helpers/daemon.js';
import { watchJsonLog, type LogRecord } from '../helpers/json-log.js';

// The daemon runs in a network namespace of its own with one veth end (192.0.2.10, 2001:db8::10, documentation
// ranges); the other end (192.0.2.1) sits in a second namespace playing "outside", from which every probe dials.
// Nothing is added to the namespace the tests run in.
const INSIDE_V4 = '192.0.2.10';
const INSIDE_V6 = '2001:db8::10';

function missingTools(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  for (const tool of ['unshare', 'nsenter', 'ip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs '${tool}' (util-linux, iproute2)`;
  }
  return undefined;
}
const skipReason = missingTools();
if (skipReason) console.warn(`port forwarding tests skipped: ${skipReason}`);

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Runs a command inside the network namespace of `pid`. */
function inNs(pid: number, cmd: string, args: string[]): string {
  return run('nsenter', [`--net=/proc/${pid}/ns/net`, cmd, ...args]);
}

const children = new Set<ChildProcess>();
const servers = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Resolves when `child` prints a line matching `test` on stdout. */
function waitForLine(child: ChildProcess, test: (line: string) => boolean, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 15_000);
    lines.on('line', (line) => {
      if (test(line)) {
        clearTimeout(timer);
        lines.close();
        resolve(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} while waiting for ${what}`)));
  });
}


interface NsDaemon {
  pid: number;
  logs: LogRecord[];
  envdPort: number;
  gatewayPort: number;
  waitForLog(test: (rec: LogRecord) => boolean, what: string): Promise<LogRecord>;
}

/** The built daemon inside a fresh network namespace (loopback up; the veth is added afterwards). */
async function startNsDaemon(args: string[]): Promise<NsDaemon> {
  const child = track(
    spawn('unshare', ['--net', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, ENTRY, '--port', '0', '--gateway-port', '5600', '--log-level', 'debug', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SANDBOXD_ACCESS_TOKEN: '', SANDBOXD_GATEWAY_TOKEN: '' },
    }),
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const { logs, waitFor: waitForLog } = watchJsonLog(child.stdout!, { context: () => stderr });
  const envd = await waitForLog((r) => r.msg === 'envd face listening', 'envd face listening');
  const gateway = await waitForLog((r) => r.msg === 'gateway face listening', 'gateway face listening');
  return { pid: child.pid!, logs, envdPort: envd.port as number, gatewayPort: gateway.port as number, waitForLog };
}

/** A second namespace ("outside") joined to the daemon's by a veth pair. Returns the outside's pid. */
async function connectOutside(daemonPid: number): Promise<number> {
  const outside = track(spawn('unshare', ['--net', 'sh', '-c', 'ip link set lo up && echo ready && exec sleep 600'], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await waitForLine(outside, (l) => l === 'ready', 'the outside namespace');
  const pid = outside.pid!;
  inNs(pid, 'ip', ['link', 'add', 'out0', 'type', 'veth', 'peer', 'name', 'ext0', 'netns', String(daemonPid)]);
  inNs(pid, 'ip', ['addr', 'add', '192.0.2.1/24', 'dev', 'out0']);
  inNs(pid, 'ip', ['-6', 'addr', 'add', '2001:db8::1/64', 'dev', 'out0', 'nodad']);
  inNs(pid, 'ip', ['link', 'set', 'out0', 'up']);
  inNs(daemonPid, 'ip', ['addr', 'add', `${INSIDE_V4}/24`, 'dev', 'ext0']);
  inNs(daemonPid, 'ip', ['-6', 'addr', 'add', `${INSIDE_V6}/64`, 'dev', 'ext0', 'nodad']);
  inNs(daemonPid, 'ip', ['link', 'set', 'ext0', 'up']);
  return pid;
}

const SERVER = `
const http = require('node:http');
const [host, port] = process.argv.slice(1);
http.createServer((req, res) => res.end('served by ' + host + ':' + port))
  .listen(Number(port), host, () => console.log('listening'));
`;

/** An HTTP server inside the daemon's namespace, bound to `host:port`, as a sandbox process would start one. */
async function startServer(daemonPid: number, host: string, port: number): Promise<ChildProcess> {
  const child = track(spawn('nsenter', [`--net=/proc/${daemonPid}/ns/net`, process.execPath, '-e', SERVER, host, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  servers.add(child);
  await waitForLine(child, (l) => l === 'listening', `a server on ${host}:${port}`);
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

const PROBE = `
const [url] = process.argv.slice(1);
fetch(url, { signal: AbortSignal.timeout(5000) }).then(
  async (res) => console.log(JSON.stringify({ status: res.status, body: await res.text() })),
  (err) => console.log(JSON.stringify({ error: err.cause?.code ?? err.name })),
);
`;

/** One HTTP GET from the outside namespace. */
function probe(outsidePid: number, url: string): { status?: number; body?: string; error?: string } {
  return JSON.parse(inNs(outsidePid, process.execPath, ['-e', PROBE, url])) as { status?: number; body?: string; error?: string };
}

const forwardStarted = (port: number, from = INSIDE_V4) => (r: LogRecord) => r.msg === 'port forward started' && r.port === port && r.from === from;

afterEach(async () => {
  await Promise.all([...servers].map(stopChild));
  servers.clear();
});
afterAll(async () => {
  await Promise.all([...children].map(stopChild));
});

describe.skipIf(skipReason !== undefined)('port forwarding, daemon bound to every interface (on by default)', () => {
  let daemon: NsDaemon;
  let outside: number;

  beforeAll(async () => {
    daemon = await startNsDaemon(['--host', '::']);
    outside = await connectOutside(daemon.pid);
  });

  it('announces that forwarding is on', async () => {
    await daemon.waitForLog((r) => r.msg?.toString().startsWith('port forwarding on') === true, 'port forwarding on');
  });

  it('makes a server listening only on 127.0.0.1 reachable from outside on the same port, over IPv4 and IPv6', async () => {
    await startServer(daemon.pid, '127.0.0.1', 18000);
    await daemon.waitForLog(forwardStarted(18000), 'forward of 18000');
    await daemon.waitForLog(forwardStarted(18000, INSIDE_V6), 'forward of 18000 on IPv6');
    expect(probe(outside, `http://${INSIDE_V4}:18000/`)).toEqual({ status: 200, body: 'served by 127.0.0.1:18000' });
    expect(probe(outside, `http://[${INSIDE_V6}]:18000/`)).toEqual({ status: 200, body: 'served by 127.0.0.1:18000' });
  });

  it('keeps a forward open across later scans (its own listener does not count as the port served wider)', async () => {
    await startServer(daemon.pid, '127.0.0.1', 18005);
    await daemon.waitForLog(forwardStarted(18005), 'forward of 18005');
    // Three scans (one a second) later the relay is still the first one, and still answers.
    await new Promise((r) => setTimeout(r, 3000));
    expect(daemon.logs.filter((r) => r.port === 18005 && r.msg === 'port forward stopped: the listener went away')).toEqual([]);
    expect(daemon.logs.filter(forwardStarted(18005))).toHaveLength(1);
    expect(probe(outside, `http://${INSIDE_V4}:18005/`)).toEqual({ status: 200, body: 'served by 127.0.0.1:18005' });
  });

  it('forwards a server listening only on ::1', async () => {
    await startServer(daemon.pid, '::1', 18001);
    await daemon.waitForLog(forwardStarted(18001), 'forward of 18001');
    expect(probe(outside, `http://${INSIDE_V4}:18001/`)).toEqual({ status: 200, body: 'served by ::1:18001' });
  });

  it('stops forwarding once the listener goes away', async () => {
    const server = await startServer(daemon.pid, '127.0.0.1', 18002);
    await daemon.waitForLog(forwardStarted(18002), 'forward of 18002');
    expect(probe(outside, `http://${INSIDE_V4}:18002/`).status).toBe(200);
    await stopChild(server);
    await daemon.waitForLog((r) => r.msg === 'port forward stopped: the listener went away' && r.port === 18002 && r.from === INSIDE_V4, 'forward of 18002 stopped');
    expect(probe(outside, `http://${INSIDE_V4}:18002/`)).toEqual({ error: 'ECONNREFUSED' });
  });

  it('leaves alone a server that already listens on every interface', async () => {
    await startServer(daemon.pid, '0.0.0.0', 18003);
    await startServer(daemon.pid, '127.0.0.1', 18004);
    // The scan that saw 18004 also saw 18003 and chose not to forward it.
    await daemon.waitForLog(forwardStarted(18004), 'forward of 18004');
    expect(daemon.logs.filter((r) => r.port === 18003 && typeof r.msg === 'string' && r.msg.includes('forward'))).toEqual([]);
    expect(probe(outside, `http://${INSIDE_V4}:18003/`)).toEqual({ status: 200, body: 'served by 0.0.0.0:18003' });
  });
});

describe.skipIf(skipReason !== undefined)('port forwarding, daemon bound to loopback with --port-forward', () => {
  let daemon: NsDaemon;
  let outside: number;

  beforeAll(async () => {
    daemon = await startNsDaemon(['--host', '127.0.0.1', '--port-forward']);
    outside = await connectOutside(daemon.pid);
  });

  it("never forwards the daemon's own ports", async () => {
    await startServer(daemon.pid, '127.0.0.1', 18010);
    await daemon.waitForLog(forwardStarted(18010), 'forward of 18010');
    // That scan saw the daemon's loopback-only envd and gateway ports too.
    const own = daemon.logs.filter((r) => r.msg === 'port forward started' && (r.port === daemon.envdPort || r.port === daemon.gatewayPort));
    expect(own).toEqual([]);
    expect(probe(outside, `http://${INSIDE_V4}:${daemon.envdPort}/health`)).toEqual({ error: 'ECONNREFUSED' });
    expect(probe(outside, `http://${INSIDE_V4}:${daemon.gatewayPort}/health`)).toEqual({ error: 'ECONNREFUSED' });
    expect(probe(outside, `http://${INSIDE_V4}:18010/`)).toEqual({ status: 200, body: 'served by 127.0.0.1:18010' });
  });
});

describe.skipIf(skipReason !== undefined)('port forwarding switched off with --no-port-forward', () => {
  it('leaves loopback-only servers unreachable from outside', async () => {
    const daemon = await startNsDaemon(['--host', '::', '--no-port-forward']);
    const outside = await connectOutside(daemon.pid);
    await startServer(daemon.pid, '127.0.0.1', 18020);
    expect(daemon.logs.some((r) => typeof r.msg === 'string' && r.msg.startsWith('port forwarding on'))).toBe(false);
    expect(probe(outside, `http://${INSIDE_V4}:18020/`)).toEqual({ error: 'ECONNREFUSED' });
    // The daemon itself is reachable, so the refusal above is the switch, not a broken link.
    expect(probe(outside, `http://${INSIDE_V4}:${daemon.envdPort}/health`)).toEqual({ status: 204, body: '' });
  });
});
