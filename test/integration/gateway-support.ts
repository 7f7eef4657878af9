import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, ROOT } from '../helpers/daemon.js';

/** The reference MCP server every gateway test registers. */
export const EVERYTHING = path.join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

/**
 * A stdio registration of server-everything. `marker` rides along as an extra argument (the server
 * ignores it) so tests can find the processes a registration started.
 */
export function stdioSpec(name: string, marker: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    is_stateful: true,
    mcp_config: { type: 'stdio_mcp', command: process.execPath, args: [EVERYTHING, 'stdio', marker], env: null, cwd: null },
    enable_tools: null,
    disable_tools: null,
    execution_timeout: null,
    ...extra,
  };
}

export function httpSpec(name: string, url: string, extra: Record<string, unknown> = {}, config: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, is_stateful: true, mcp_config: { type: 'http_mcp', url, headers: null, timeout: 30, ...config }, ...extra };
}

export interface Answer {
  status: number;
  body: unknown;
  text: string;
}

/** AgentScope's view of the gateway: JSON over HTTP with an (agent, session) pair in the query. */
export class GatewayApi {
  constructor(
    readonly baseUrl: string,
    readonly scope: { agent_id?: string; session_id?: string } = {},
    readonly headers: Record<string, string> = {},
  ) {}

  with(scope: { agent_id?: string; session_id?: string }, headers = this.headers): GatewayApi {
    return new GatewayApi(this.baseUrl, scope, headers);
  }

  url(p: string): string {
    const u = new URL(p, this.baseUrl);
    for (const [k, v] of Object.entries(this.scope)) if (v !== undefined) u.searchParams.set(k, v);
    return u.toString();
  }

  async request(method: string, p: string, body?: unknown, raw?: string): Promise<Answer> {
    const res = await fetch(this.url(p), {
      method,
      headers: { ...(body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {}), ...this.headers },
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // plain text (the health answer)
    }
    return { status: res.status, body: parsed, text };
  }

  get = (p: string) => this.request('GET', p);
  post = (p: string, body?: unknown, raw?: string) => this.request('POST', p, body, raw);
  delete = (p: string) => this.request('DELETE', p);
}

/** Pids of live processes whose command line contains `marker`. */
export function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue; // a zombie is already dead
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/** Waits until no process carries `marker` (or gives up and returns what is left). */
export async function waitUntilGone(marker: string, ms = 5000): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = processesWith(marker);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = processesWith(marker);
  }
  return left;
}

export interface HttpUpstream {
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** server-everything in `streamableHttp` or `sse` mode on a free port (it reads PORT). */
export async function startEverythingHttp(mode: 'streamableHttp' | 'sse'): Promise<HttpUpstream> {
  const port = await freePort();
  const child = spawn(process.execPath, [EVERYTHING, mode], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`server-everything ${mode} did not listen on ${port}`);
    await sleep(50);
  }
  return {
    port,
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
  };
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** JSON-RPC method names in the body (POSTs). */
  rpc: string[];
}

/** A pass-through HTTP proxy in front of an upstream that remembers every request it relayed. */
export async function startRecordingProxy(targetPort: number): Promise<{ url: string; seen: SeenRequest[]; close(): Promise<void> }> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let rpc: string[] = [];
      try {
        const parsed = JSON.parse(body.toString()) as { method?: string } | { method?: string }[];
        rpc = (Array.isArray(parsed) ? parsed : [parsed]).map((m) => m.method ?? '(response)');
      } catch {
        // not JSON (GET)
      }
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rpc });
      const upstream = http.request(
        { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${targetPort}` } },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      res.on('close', () => upstream.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
