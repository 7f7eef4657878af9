// A local stand-in for E2B's control plane and client proxy, for tests: the subset of E2B's REST API the JS
// and Python SDKs and AgentScope call, over sandboxes that are the image (test/image's rootfs) started in
// namespaces of their own, each with its own veth, each given a fresh access token by POST /init as E2B's
// orchestrator does. Not a daemon feature: the peer that cannot run here, played by real parts.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream';
import { serve, type ServerType } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { connectVeth, removeLink, run, startSandbox, stopSandbox, type ImageManifest, type RunningSandbox } from './sandbox.js';

export const ENVD_PORT = 49983;

export interface ControlPlaneOptions {
  /** Template id → image; `Sandbox.create()` without a template asks for `base`. */
  templates: Record<string, ImageManifest>;
  /** What clients send as `X-API-Key` (E2B_API_KEY); random by default. */
  apiKey?: string;
  /** Where the API and the proxy listen (default 127.0.0.1), ports 0 = any free one. */
  host?: string;
  apiPort?: number;
  proxyPort?: number;
  /** The sandbox domain: the proxy also routes `Host: <port>-<sandbox id>.<domain>`. */
  domain?: string;
  /** The user /init makes the default (E2B's orchestrator sends `user`). */
  defaultUser?: string;
  /** Runs on every new sandbox before /init: what a test gives each sandbox (say, bind mounts of tools). */
  prepare?: (sandbox: RunningSandbox) => void;
  /** Told what happens (sandbox started, killed, …); silent by default. */
  log?: (msg: string) => void;
}

export type SandboxState = 'running' | 'paused';

/** One sandbox the control plane runs. */
export interface LocalSandbox {
  id: string;
  templateId: string;
  /** The address of the sandbox's end of its veth: envd is at `http://<it>:49983`. */
  address: string;
  accessToken: string;
  envdVersion: string;
  metadata: Record<string, string>;
  envVars: Record<string, string>;
  startedAt: Date;
  endAt: Date;
  state: SandboxState;
  autoPause: boolean;
  running: RunningSandbox;
}

export interface ControlPlane {
  /** E2B_API_URL */
  apiUrl: string;
  /** E2B_SANDBOX_URL: the client proxy */
  sandboxUrl: string;
  /** E2B_API_KEY */
  apiKey: string;
  domain: string;
  /** The variables that point the SDKs (and AgentScope) here. */
  env: Record<string, string>;
  sandbox(id: string): LocalSandbox | undefined;
  sandboxes(): LocalSandbox[];
  /** Kills every sandbox and stops listening. */
  close(): Promise<void>;
}

interface ApiError {
  code: number;
  message: string;
}

class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 409 | 500,
    message: string,
  ) {
    super(message);
  }
}

/** E2B-style sandbox id: 20 lowercase letters and digits. */
function newSandboxId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(20)].map((b) => alphabet[b % alphabet.length]).join('');
}

function stringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, `${what} must be an object of strings`);
  for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') throw new HttpError(400, `${what}.${k} must be a string`);
  return v as Record<string, string>;
}

function timeoutSeconds(v: unknown, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new HttpError(400, `timeout must be a non-negative integer of seconds, got ${JSON.stringify(v)}`);
  return v;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade']);

/** Raw headers (name, value, name, value, …) without the hop-by-hop ones, which each leg sets for itself. */
function endToEnd(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

/** Every process in the PID namespace whose init is `initPid` (as seen from here). */
function processesInPidNamespace(initPid: number): number[] {
  const ns = readlinkSync(`/proc/${initPid}/ns/pid`);
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/ns/pid`) === ns) out.push(Number(name));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}

/**
 * Starts the API and the proxy. Sandboxes share the image read-only: each runs on an overlay of its own
 * (mounted here, then unmounted here once the sandbox's private mount namespace holds its copy), so files
 * written in one are not seen by another.
 */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const apiKey = opts.apiKey ?? `e2b_${randomBytes(20).toString('hex')}`;
  const host = opts.host ?? '127.0.0.1';
  const domain = opts.domain ?? 'sandbox.test';
  const defaultUser = opts.defaultUser ?? 'user';
  const log = opts.log ?? (() => undefined);
  const sandboxes = new Map<string, LocalSandbox>();
  const timers = new Map<string, NodeJS.Timeout>();
  const starting = new Set<Promise<unknown>>();
  // One /16 of 10/8 per control plane and a /30 per sandbox; link names carry a tag of this instance.
  const net16 = 100 + (randomBytes(1)[0]! % 100);
  const tag = randomBytes(2).toString('hex');
  let nextSlot = 0;
  let closed = false;

  function slot(): { link: string; outside: string; inside: string } {
    const n = nextSlot++;
    const base = (n & 63) * 4;
    const third = n >> 6;
    return { link: `e2b${tag}n${n}`, outside: `10.${net16}.${third}.${base + 1}`, inside: `10.${net16}.${third}.${base + 2}` };
  }

  function overlayDir(manifest: ImageManifest, id: string): string {
    return path.join(path.dirname(manifest.rootfs), 'sandboxes', id);
  }

  function schedule(sbx: LocalSandbox): void {
    clearTimeout(timers.get(sbx.id));
    const ms = Math.max(0, sbx.endAt.getTime() - Date.now());
    const timer = setTimeout(() => {
      timers.delete(sbx.id);
      if (sbx.autoPause) pause(sbx);
      else void kill(sbx.id);
    }, ms);
    timer.unref();
    timers.set(sbx.id, timer);
  }

  async function create(templateId: string, body: Record<string, unknown>): Promise<LocalSandbox> {
    const manifest = opts.templates[templateId];
    if (!manifest) throw new HttpError(404, `template '${templateId}' not found (this control plane has ${Object.keys(opts.templates).join(', ')})`);
    const metadata = stringMap(body.metadata, 'metadata');
    const envVars = stringMap(body.envVars, 'envVars');
    const timeout = timeoutSeconds(body.timeout, 15);
    const id = newSandboxId();
    const began = Date.now();
    const { link, outside, inside } = slot();
    const dir = overlayDir(manifest, id);
    const merged = path.join(dir, 'merged');
    for (const d of ['upper', 'work', 'merged']) mkdirSync(path.join(dir, d), { recursive: true });
    run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${manifest.rootfs},upperdir=${dir}/upper,workdir=${dir}/work`, merged]);
    let running: RunningSandbox | undefined;
    try {
      running = await startSandbox({ ...manifest, rootfs: merged });
    } finally {
      // The sandbox's mount namespace keeps its own copy; ours would only leak.
      run('umount', ['-l', merged]);
    }
    try {
      connectVeth(running, { name: link, cidr: `${outside}/30` }, `${inside}/30`);
      opts.prepare?.(running);
      const accessToken = randomBytes(24).toString('base64url');
      const init = await fetch(`http://${inside}:${ENVD_PORT}/init`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ accessToken, envVars, defaultUser, timestamp: new Date().toISOString() }),
        signal: AbortSignal.timeout(10_000),
      });
      if (init.status !== 204) throw new Error(`POST /init answered ${init.status}: ${await init.text()}`);
      const now = new Date();
      const sbx: LocalSandbox = {
        id,
        templateId,
        address: inside,
        accessToken,
        envdVersion: init.headers.get('x-envd-version') ?? '0.1.0',
        metadata,
        envVars,
        startedAt: now,
        endAt: new Date(now.getTime() + timeout * 1000),
        state: 'running',
        autoPause: body.autoPause === true,
        running,
      };
      sandboxes.set(id, sbx);
      running.exited.then(() => forget(id, manifest), () => undefined);
      schedule(sbx);
      log(`sandbox ${id} (${templateId}) running at ${inside}, started and initialised in ${Date.now() - began} ms`);
      return sbx;
    } catch (err) {
      await stopSandbox(running, 2_000);
      removeLink(link);
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  function forget(id: string, manifest: ImageManifest): void {
    clearTimeout(timers.get(id));
    timers.delete(id);
    sandboxes.delete(id);
    rmSync(overlayDir(manifest, id), { recursive: true, force: true });
  }

  function pause(sbx: LocalSandbox): boolean {
    if (sbx.state === 'paused') return false;
    // Stopped twice over so a process forked while the first pass ran is caught too.
    signalAll(processesInPidNamespace(sbx.running.initPid), 'SIGSTOP');
    signalAll(processesInPidNamespace(sbx.running.initPid), 'SIGSTOP');
    sbx.state = 'paused';
    clearTimeout(timers.get(sbx.id));
    log(`sandbox ${sbx.id} paused`);
    return true;
  }

  function resume(sbx: LocalSandbox, timeout: number): boolean {
    const wasPaused = sbx.state === 'paused';
    if (wasPaused) {
      signalAll(processesInPidNamespace(sbx.running.initPid), 'SIGCONT');
      sbx.state = 'running';
      log(`sandbox ${sbx.id} resumed`);
    }
    const end = Date.now() + timeout * 1000;
    if (wasPaused || end > sbx.endAt.getTime()) sbx.endAt = new Date(end);
    schedule(sbx);
    return wasPaused;
  }

  async function kill(id: string): Promise<boolean> {
    const sbx = sandboxes.get(id);
    if (!sbx) return false;
    sandboxes.delete(id);
    clearTimeout(timers.get(id));
    if (sbx.state === 'paused') signalAll(processesInPidNamespace(sbx.running.initPid), 'SIGCONT');
    await stopSandbox(sbx.running, 2_000);
    log(`sandbox ${id} killed`);
    return true;
  }

  function find(id: string): LocalSandbox {
    const sbx = sandboxes.get(id);
    if (!sbx) throw new HttpError(404, `sandbox '${id}' not found`);
    return sbx;
  }

  const created = (sbx: LocalSandbox) => ({
    sandboxID: sbx.id,
    templateID: sbx.templateId,
    clientID: 'local',
    envdVersion: sbx.envdVersion,
    envdAccessToken: sbx.accessToken,
    trafficAccessToken: null,
    domain,
  });
  const listed = (sbx: LocalSandbox) => ({
    sandboxID: sbx.id,
    templateID: sbx.templateId,
    clientID: 'local',
    startedAt: sbx.startedAt.toISOString(),
    endAt: sbx.endAt.toISOString(),
    cpuCount: 2,
    memoryMB: 512,
    diskSizeMB: 1024,
    state: sbx.state,
    envdVersion: sbx.envdVersion,
    metadata: sbx.metadata,
    volumeMounts: [],
  });
  const detail = (sbx: LocalSandbox) => ({ ...listed(sbx), envdAccessToken: sbx.accessToken, domain });

  const idOf = (c: Context): string => c.req.param('id') ?? '';

  async function json(c: Context): Promise<Record<string, unknown>> {
    const text = await c.req.text();
    if (text === '') return {};
    try {
      const v = JSON.parse(text) as unknown;
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // fall through
    }
    throw new HttpError(400, 'the body must be a JSON object');
  }

  /** `?metadata=k%3Dv&…` as the SDKs encode it; `state` repeated (JS) or comma-separated (Python). */
  function listFilter(c: Context): (sbx: LocalSandbox) => boolean {
    const want = new URLSearchParams(c.req.query('metadata') ?? '');
    const states = c.req.queries('state')?.flatMap((s) => s.split(',')).filter(Boolean);
    const template = c.req.query('template');
    return (sbx) =>
      [...want].every(([k, v]) => sbx.metadata[k] === v) &&
      (states === undefined || states.length === 0 || states.includes(sbx.state)) &&
      (template === undefined || template === sbx.templateId);
  }

  const api = new Hono();
  api.onError((err, c) => {
    const status = err instanceof HttpError ? err.status : 500;
    return c.json({ code: status, message: err.message } satisfies ApiError, status);
  });
  api.notFound((c) => c.json({ code: 404, message: `no route ${c.req.method} ${c.req.path} in the local control plane` }, 404));
  api.use('*', async (c, next) => {
    if (c.req.header('x-api-key') !== apiKey) throw new HttpError(401, 'Invalid API key: send the control plane key as X-API-Key (E2B_API_KEY)');
    await next();
  });

  const createRoute = async (c: Context) => {
    if (closed) throw new HttpError(500, 'the control plane is shutting down');
    const body = await json(c);
    const templateId = body.templateID;
    if (typeof templateId !== 'string' || templateId === '') throw new HttpError(400, 'templateID is required');
    const pending = create(templateId, body);
    starting.add(pending);
    try {
      return c.json(created(await pending), 201);
    } finally {
      starting.delete(pending);
    }
  };
  api.post('/sandboxes', createRoute);
  api.post('/v2/sandboxes', createRoute);
  api.get('/sandboxes', (c) => c.json([...sandboxes.values()].filter((s) => s.state === 'running').filter(listFilter(c)).map(listed)));
  api.get('/v2/sandboxes', (c) => c.json([...sandboxes.values()].filter(listFilter(c)).map(listed)));
  api.get('/sandboxes/:id', (c) => c.json(detail(find(idOf(c)))));
  api.delete('/sandboxes/:id', async (c) => {
    if (!(await kill(idOf(c)))) throw new HttpError(404, `sandbox '${idOf(c)}' not found`);
    return c.body(null, 204);
  });
  api.post('/sandboxes/:id/timeout', async (c) => {
    const sbx = find(idOf(c));
    sbx.endAt = new Date(Date.now() + timeoutSeconds((await json(c)).timeout, 15) * 1000);
    if (sbx.state === 'running') schedule(sbx);
    return c.body(null, 204);
  });
  api.post('/sandboxes/:id/refreshes', async (c) => {
    const sbx = find(idOf(c));
    const end = Date.now() + timeoutSeconds((await json(c)).duration, 15) * 1000;
    if (end > sbx.endAt.getTime()) sbx.endAt = new Date(end);
    if (sbx.state === 'running') schedule(sbx);
    return c.body(null, 204);
  });
  api.post('/sandboxes/:id/pause', (c) => {
    const sbx = find(idOf(c));
    if (!pause(sbx)) throw new HttpError(409, `sandbox '${sbx.id}' is already paused`);
    return c.body(null, 204);
  });
  api.post('/sandboxes/:id/resume', async (c) => {
    const sbx = find(idOf(c));
    const body = await json(c);
    if (sbx.state !== 'paused') throw new HttpError(409, `sandbox '${sbx.id}' is already running`);
    if (typeof body.autoPause === 'boolean') sbx.autoPause = body.autoPause;
    resume(sbx, timeoutSeconds(body.timeout, 15));
    return c.json(created(sbx), 201);
  });
  const connectRoute = async (c: Context) => {
    const sbx = find(idOf(c));
    const resumed = resume(sbx, timeoutSeconds((await json(c)).timeout, 15));
    return c.json(created(sbx), resumed ? 201 : 200);
  };
  api.post('/sandboxes/:id/connect', connectRoute);
  api.post('/v2/sandboxes/:id/connect', connectRoute);
  api.get('/sandboxes/:id/metrics', async (c) => {
    const sbx = find(idOf(c));
    const res = await fetch(`http://${sbx.address}:${ENVD_PORT}/metrics`, { headers: { 'X-Access-Token': sbx.accessToken }, signal: AbortSignal.timeout(5000) });
    const m = (await res.json()) as Record<string, number>;
    return c.json([
      {
        timestamp: new Date().toISOString(),
        timestampUnix: Math.floor(Date.now() / 1000),
        cpuCount: m.cpu_count,
        cpuUsedPct: m.cpu_used_pct,
        memUsed: m.mem_used,
        memTotal: m.mem_total,
        memCache: m.mem_cache ?? 0,
        diskUsed: m.disk_used,
        diskTotal: m.disk_total,
      },
    ]);
  });

  const proxy = http.createServer((req, res) => relay(req, res));
  const agent = new http.Agent({ keepAlive: true });
  function refuse(res: http.ServerResponse, status: 400 | 502, message: string, extra: Record<string, unknown> = {}): void {
    const body = JSON.stringify({ code: status, message, ...extra });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
  /** Where a request goes: the `E2b-Sandbox-Id`/`E2b-Sandbox-Port` headers, else `<port>-<id>.<domain>` in Host. */
  function route(req: http.IncomingMessage): { id: string; port: number } | string {
    const id = req.headers['e2b-sandbox-id'];
    const port = req.headers['e2b-sandbox-port'];
    if (typeof id === 'string' && id !== '') {
      const p = Number(port ?? ENVD_PORT);
      if (!Number.isInteger(p) || p < 1 || p > 65535) return `E2b-Sandbox-Port '${String(port)}' is not a port`;
      return { id, port: p };
    }
    const hostname = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    const m = /^(\d{1,5})-([a-z0-9]+)\.(.+)$/.exec(hostname);
    if (m && m[3] === domain && Number(m[1]) >= 1 && Number(m[1]) <= 65535) return { id: m[2]!, port: Number(m[1]) };
    return `no sandbox named: send E2b-Sandbox-Id and E2b-Sandbox-Port, or Host <port>-<sandbox id>.${domain}`;
  }
  function relay(req: http.IncomingMessage, res: http.ServerResponse): void {
    const to = route(req);
    if (typeof to === 'string') return refuse(res, 400, to);
    const sbx = sandboxes.get(to.id);
    if (!sbx) return refuse(res, 502, `The sandbox '${to.id}' was not found (killed, timed out or never created)`, { sandboxId: to.id });
    if (sbx.state === 'paused') return refuse(res, 502, `The sandbox '${to.id}' is paused: resume it with connect`, { sandboxId: to.id });
    const upstream = http.request(
      { host: sbx.address, port: to.port, method: req.method, path: req.url, headers: endToEnd(req.rawHeaders), agent },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.statusMessage, endToEnd(up.rawHeaders));
        pipeline(up, res, () => undefined);
      },
    );
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) {
        res.destroy(err);
        return;
      }
      const why = err.code === 'ECONNREFUSED' ? `nothing listens on port ${to.port} in sandbox '${to.id}'` : `port ${to.port} of sandbox '${to.id}' failed: ${err.code ?? err.message}`;
      refuse(res, 502, why, { sandboxId: to.id, port: to.port });
    });
    // A client that goes away takes the upstream request with it (a streaming RPC ends in the sandbox).
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    pipeline(req, upstream, () => undefined);
  }

  const apiServer = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: api.fetch, hostname: host, port: opts.apiPort ?? 0 }, () => resolve(s));
  });
  await new Promise<void>((resolve) => proxy.listen(opts.proxyPort ?? 0, host, resolve));
  const urlOf = (s: { address(): net.AddressInfo | string | null }) => {
    const a = s.address() as net.AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  };
  const apiUrl = urlOf(apiServer as http.Server);
  const sandboxUrl = urlOf(proxy);

  return {
    apiUrl,
    sandboxUrl,
    apiKey,
    domain,
    env: { E2B_API_URL: apiUrl, E2B_SANDBOX_URL: sandboxUrl, E2B_API_KEY: apiKey, E2B_DOMAIN: domain },
    sandbox: (id) => sandboxes.get(id),
    sandboxes: () => [...sandboxes.values()],
    async close() {
      closed = true;
      await Promise.allSettled([...starting]);
      await Promise.all([...sandboxes.keys()].map((id) => kill(id)));
      proxy.closeAllConnections();
      agent.destroy();
      await new Promise((resolve) => proxy.close(resolve));
      await new Promise((resolve) => apiServer.close(resolve));
    },
  };
}

/** The image test's manifest file as a template table: `base` (what `Sandbox.create()` asks for). */
export function templatesFromManifest(file: string, names: string[] = ['base']): Record<string, ImageManifest> {
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as ImageManifest;
  return Object.fromEntries(names.map((n) => [n, manifest]));
}
