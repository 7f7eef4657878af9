import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { startDaemon as startInProcess } from '../../src/daemon.js';
import { listenEarly } from '../../src/early.js';
import { NO_TOKEN_HINT } from '../../src/gateway/auth.js';
import { createLogger } from '../../src/log.js';
import { PortForwarder } from '../../src/portforward/forwarder.js';
import { ENTRY } from '../helpers/daemon.js';
import { watchJsonLog, type JsonLog } from '../helpers/json-log.js';
import { connectOutside, netnsUnavailable, probeFrom, type HttpProbe, type HttpProbeResult } from '../helpers/netns.js';

// Who may use the gateway, cell by cell: clients on loopback and clients on a veth address, against a daemon
// with no token, with the envd token set by /init, and with --gateway-token. The daemon runs in a network
// namespace of its own; "outside" is a second namespace at the other end of a veth pair (TEST-NET-1).
const INSIDE = '192.0.2.10';
const OUTSIDE = '192.0.2.1';
const ENVD_TOKEN = 'envd-secret';
const GATEWAY_TOKEN = 'gw-secret';

const skipReason = netnsUnavailable();
if (skipReason) console.warn(`gateway auth namespace tests skipped: ${skipReason}`);

const holders = new Set<ChildProcess>();

interface NsDaemon extends JsonLog {
  pid: number;
  outside: number;
}

/** The built daemon alone in a new network namespace with `args`, plus an outside namespace on a veth. */
async function startNsDaemon(args: string[]): Promise<NsDaemon> {
  const child = spawn('unshare', ['--net', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, ENTRY, '--port', '49983', '--gateway-port', '5600', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SANDBOXD_ACCESS_TOKEN: '', SANDBOXD_GATEWAY_TOKEN: '' },
  });
  holders.add(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<string>((resolve) => child.once('exit', (code) => resolve(`daemon exited with ${code}`)));
  const log = watchJsonLog(child.stdout!, { context: () => stderr, exited });
  await log.waitFor((r) => r.msg === 'gateway face listening', 'gateway face listening');
  const outside = await connectOutside(child.pid!, `${OUTSIDE}/24`, `${INSIDE}/24`);
  holders.add(outside);
  return { ...log, pid: child.pid!, outside: outside.pid! };
}

const mcps = (host: string, headers: Record<string, string> = {}): HttpProbe => ({ url: `http://${host}:5600/mcps`, headers });
const status = (r: HttpProbeResult[]) => r.map((x) => ('status' in x ? x.status : x.error));
const init = (token: string): HttpProbe => ({
  url: `http://${INSIDE}:49983/init`,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ accessToken: token }),
});

afterAll(() => {
  for (const h of holders) h.kill('SIGKILL');
});

describe.skipIf(skipReason !== undefined)('gateway auth with no token configured', () => {
  let d: NsDaemon;
  beforeAll(async () => {
    d = await startNsDaemon(['--host', '::']);
  });

  it('serves loopback clients, IPv4 and IPv6', () => {
    expect(status(probeFrom(d.pid, [mcps('127.0.0.1'), mcps('[::1]')]))).toEqual([200, 200]);
  });

  it('refuses a client on the veth with 403 and a hint, whatever it sends; /health stays open', () => {
    const [bare, bearer, health] = probeFrom(d.outside, [mcps(INSIDE), mcps(INSIDE, { authorization: 'Bearer anything' }), { url: `http://${INSIDE}:5600/health` }]);
    expect(bare).toEqual({ status: 403, body: JSON.stringify({ detail: NO_TOKEN_HINT }) });
    expect(status([bearer!, health!])).toEqual([403, 200]);
  });
});

describe.skipIf(skipReason !== undefined)('gateway auth once /init set the envd token', () => {
  let d: NsDaemon;
  beforeAll(async () => {
    d = await startNsDaemon(['--host', '::']);
    expect(status(probeFrom(d.outside, [init(ENVD_TOKEN)]))).toEqual([204]);
  });

  it('still serves loopback clients without a token (AgentScope’s in-sandbox shim sends none)', () => {
    expect(status(probeFrom(d.pid, [mcps('127.0.0.1'), mcps('[::1]'), mcps('127.0.0.1', { 'x-access-token': 'wrong' })]))).toEqual([200, 200, 200]);
  });

  it('asks a client on the veth for the envd token, as Bearer or X-Access-Token', () => {
    const r = probeFrom(d.outside, [
      mcps(INSIDE),
      mcps(INSIDE, { 'x-access-token': 'wrong' }),
      mcps(INSIDE, { authorization: 'Bearer wrong' }),
      mcps(INSIDE, { authorization: `Basic ${ENVD_TOKEN}` }),
      mcps(INSIDE, { 'x-access-token': ENVD_TOKEN }),
      mcps(INSIDE, { authorization: `Bearer ${ENVD_TOKEN}` }),
    ]);
    expect(status(r)).toEqual([401, 401, 401, 401, 200, 200]);
    expect(JSON.parse((r[0] as { body: string }).body).detail).toContain('X-Access-Token');
  });

  it('refuses an /init replay with another token, and the first token keeps working', () => {
    expect(status(probeFrom(d.outside, [init('someone-else'), mcps(INSIDE, { 'x-access-token': 'someone-else' }), mcps(INSIDE, { 'x-access-token': ENVD_TOKEN })]))).toEqual([401, 401, 200]);
  });
});

describe.skipIf(skipReason !== undefined)('gateway auth with --gateway-token', () => {
  let d: NsDaemon;
  beforeAll(async () => {
    d = await startNsDaemon(['--host', '::', '--gateway-token', GATEWAY_TOKEN]);
    expect(status(probeFrom(d.outside, [init(ENVD_TOKEN)]))).toEqual([204]);
  });

  it('asks loopback clients for it too', () => {
    const r = probeFrom(d.pid, [mcps('127.0.0.1'), mcps('127.0.0.1', { authorization: 'Bearer wrong' }), mcps('127.0.0.1', { authorization: `Bearer ${GATEWAY_TOKEN}` })]);
    expect(status(r)).toEqual([401, 401, 200]);
  });

  it('takes only it from a client on the veth: the envd token is no substitute', () => {
    const r = probeFrom(d.outside, [
      mcps(INSIDE),
      mcps(INSIDE, { 'x-access-token': ENVD_TOKEN }),
      mcps(INSIDE, { authorization: `Bearer ${ENVD_TOKEN}` }),
      mcps(INSIDE, { 'x-access-token': GATEWAY_TOKEN }),
      mcps(INSIDE, { authorization: `Bearer ${GATEWAY_TOKEN}` }),
    ]);
    expect(status(r)).toEqual([401, 401, 401, 401, 200]);
  });
});

describe.skipIf(skipReason !== undefined)('gateway auth and the port forwarder', () => {
  let d: NsDaemon;
  beforeAll(async () => {
    d = await startNsDaemon(['--host', '127.0.0.1', '--port-forward']);
  });

  it("does not forward the daemon's loopback-only gateway, while it forwards a user's loopback server", async () => {
    const server = spawn('nsenter', [`--net=/proc/${d.pid}/ns/net`, process.execPath, '-e', "require('node:http').createServer((q, s) => s.end('user')).listen(18000, '127.0.0.1')"], { stdio: 'ignore' });
    holders.add(server);
    await d.waitFor((r) => r.msg === 'port forward started' && r.port === 18000, 'forward of 18000');
    const [user, gateway, envd] = probeFrom(d.outside, [{ url: `http://${INSIDE}:18000/` }, mcps(INSIDE), { url: `http://${INSIDE}:49983/health` }]);
    expect(user).toEqual({ status: 200, body: 'user' });
    expect(gateway).toEqual({ error: 'ECONNREFUSED' });
    expect(envd).toEqual({ error: 'ECONNREFUSED' });
    expect(d.logs.filter((r) => r.msg === 'port forward started' && (r.port === 5600 || r.port === 49983))).toEqual([]);
    server.kill('SIGKILL');
  });
});

describe('gateway auth and a relay of the gateway itself (in process)', () => {
  it('treats a relayed connection from 127.0.0.1 as a client from outside', async () => {
    const parsed = parseConfig(['--port', '0', '--gateway-port', '5600', '--host', '127.0.0.1'], {});
    if (parsed.kind !== 'run') throw new Error('expected a run config');
    // A free gateway port: the flag's 0 means off.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const logger = createLogger('silent');
    const config = { ...parsed.config, gatewayPort: port };
    const daemon = await startInProcess(config, logger, await listenEarly(config));
    // A forwarder that (unlike the daemon's own) does not exclude the gateway port, relaying from 127.0.0.2.
    const forwarder = new PortForwarder({ logger, excludePorts: [], listeners: async () => [{ address: '127.0.0.1', port }], addresses: () => ['127.0.0.2'] });
    try {
      await forwarder.scan();
      const direct = await fetch(`http://127.0.0.1:${port}/mcps`);
      expect(direct.status).toBe(200);
      const relayed = await fetch(`http://127.0.0.2:${port}/mcps`);
      expect(relayed.status).toBe(403);
      expect(await relayed.json()).toEqual({ detail: NO_TOKEN_HINT });
      daemon.deps.state.accessToken = ENVD_TOKEN;
      expect((await fetch(`http://127.0.0.2:${port}/mcps`)).status).toBe(401);
      expect((await fetch(`http://127.0.0.2:${port}/mcps`, { headers: { 'x-access-token': ENVD_TOKEN } })).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/mcps`)).status).toBe(200);
    } finally {
      await forwarder.close();
      await daemon.close();
    }
  });
});
