import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike, Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CallToolResultSchema,
  ErrorCode,
  LoggingMessageNotificationSchema,
  McpError,
  ProgressNotificationSchema,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type CallToolResult,
  type Implementation,
  type Progress,
  type ServerCapabilities,
  type ServerNotification,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv-provider.js';
import type { Logger } from '../log.js';
import { describeError, GatewayError, quote } from './errors.js';
import type { HttpUpstreamConfig, McpSpec } from './spec.js';
import { ProcessGroupStdioTransport } from './stdio-transport.js';

const CLIENT_INFO: Implementation = { name: 'sandboxd-gateway', version: '0.1.0' };
/** setTimeout's ceiling: the SDK wants a number, and AgentScope waits on a tool without limit. */
const NO_TIMEOUT_MS = 2_147_483_647;
/** Shared by every client: stateless upstreams open one per call, and an Ajv instance is costly to build. */
const validator = new AjvJsonSchemaValidator();
/** Listing and forwarding bound for stdio servers once started (the SDK's default request timeout). */
const STDIO_REQUEST_TIMEOUT_MS = 60_000;

let progressTokens = 0;

/** The server notifications the gateway passes on to its MCP sessions. */
const FORWARDED_NOTIFICATIONS = [
  ToolListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  PromptListChangedNotificationSchema,
  LoggingMessageNotificationSchema,
] as const;

interface Session {
  client: Client;
  transport: Transport;
}

/** The options a request to the upstream can carry. */
export interface ForwardOptions {
  timeoutMs?: number;
  /** Aborting it cancels the request upstream (MCP `notifications/cancelled`). */
  signal?: AbortSignal;
  /** Progress the upstream reports for this request (the gateway asks for it only when its caller did). */
  onprogress?: (progress: Progress) => void;
}

/**
 * `fetch` for HTTP upstreams: headers are the spec's, overlaid by the current runtime headers, overlaid
 * by what the SDK sets per request (session id, content type, protocol version always win). It gives up
 * when response headers take longer than `timeoutMs` (httpx's `timeout` in AgentScope); a streaming
 * body, such as an SSE channel, is not cut once it has started.
 */
function upstreamFetch(cfg: HttpUpstreamConfig, runtimeHeaders: () => Record<string, string>): FetchLike {
  const { timeoutMs } = cfg;
  return async (url, init) => {
    const headers = new Headers(cfg.headers);
    for (const [k, v] of Object.entries(runtimeHeaders())) headers.set(k, v);
    new Headers(init?.headers).forEach((v, k) => headers.set(k, v));
    if (timeoutMs === undefined) return fetch(url, { ...init, headers });
    const ac = new AbortController();
    const outer = init?.signal;
    if (outer?.aborted) ac.abort(outer.reason);
    else outer?.addEventListener('abort', () => ac.abort(outer.reason), { once: true });
    const timer = setTimeout(() => ac.abort(new Error(`no response from ${String(url)} within ${timeoutMs} ms`)), timeoutMs);
    try {
      return await fetch(url, { ...init, headers, signal: ac.signal });
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * One registered MCP server seen through the MCP SDK client. Stateful upstreams (every stdio server,
 * HTTP ones with `is_stateful: true`) keep one session for their lifetime; stateless HTTP upstreams
 * open a session per operation, as AgentScope's `MCPClient` does.
 */
export class Upstream {
  private session: Session | undefined;
  /** Every session opened and not yet ended (including one still connecting), so close() can end them all. */
  private readonly live = new Set<Session>();
  /** Progress callbacks by the token the gateway sent upstream (see callTool). */
  private readonly progress = new Map<string, (p: Progress) => void>();
  private tools: Tool[] | undefined;
  /** Set once open() has connected and listed: later requests get the usual bounds. */
  private started = false;
  private closing: Promise<void> | undefined;
  /** Headers set at runtime (rotated credentials), never part of the spec; see `setRuntimeHeaders`. */
  private runtimeHeaders: Record<string, string> = {};
  /** Why a stateful upstream stopped working (its process exited, say); set once, never cleared. */
  failure: string | undefined;
  /** The last stderr lines of a stdio server that stopped. */
  private failureStderr: string | undefined;
  capabilities: ServerCapabilities = {};
  /** Called with every list-changed, resource-updated and logging notification the server sends. */
  onNotification: ((notification: ServerNotification) => void) | undefined;
  serverInfo: Implementation = CLIENT_INFO;
  instructions: string | undefined;

  private constructor(
    readonly spec: McpSpec,
    private readonly logger: Logger,
  ) {}

  /**
   * Connects (stateful) or probes (stateless) and primes the tool list; throws with the reason it could
   * not. Aborting `signal` stops a server still starting (the daemon is shutting down).
   */
  static async open(spec: McpSpec, logger: Logger, runtimeHeaders?: Record<string, string>, signal?: AbortSignal): Promise<Upstream> {
    const up = new Upstream(spec, logger.child({ mcp: spec.name }));
    // Before connecting: a rotated credential must already be in place for the handshake.
    if (runtimeHeaders !== undefined) up.setRuntimeHeaders(runtimeHeaders);
    const stop = () => void up.close();
    signal?.addEventListener('abort', stop, { once: true });
    let timedOut = false;
    const bound = spec.startTimeoutMs;
    const timer =
      bound === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            stop();
          }, bound);
    try {
      if (signal?.aborted) throw new Error('the gateway is shutting down');
      if (spec.isStateful) up.session = await up.connect();
      await up.listTools();
      up.started = true;
      return up;
    } catch (err) {
      await up.close();
      if (timedOut) throw new Error(`the server did not start within ${bound! / 1000} s (start_timeout)`);
      throw err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
    }
  }

  /** The stdio server's pid while it runs (tests and logs). */
  get pid(): number | undefined {
    const t = this.session?.transport;
    return t instanceof ProcessGroupStdioTransport ? t.pid : undefined;
  }

  private get requestTimeoutMs(): number {
    const cfg = this.spec.config;
    return cfg.type === 'http_mcp' ? (cfg.timeoutMs ?? NO_TIMEOUT_MS) : STDIO_REQUEST_TIMEOUT_MS;
  }

  /** The handshake waits as long as the start may take (start_timeout bounds it as a whole, in open()). */
  private get handshakeTimeoutMs(): number {
    return this.spec.config.type === 'http_mcp' ? this.requestTimeoutMs : NO_TIMEOUT_MS;
  }

  private async connect(): Promise<Session> {
    const cfg = this.spec.config;
    const transport =
      cfg.type === 'stdio_mcp'
        ? new ProcessGroupStdioTransport({ command: cfg.command, args: cfg.args, env: cfg.env, cwd: cfg.cwd }, this.logger)
        : cfg.transport === 'sse'
          ? new SSEClientTransport(cfg.url, { fetch: upstreamFetch(cfg, () => this.runtimeHeaders) })
          : new StreamableHTTPClientTransport(cfg.url, { fetch: upstreamFetch(cfg, () => this.runtimeHeaders) });
    const client = new Client(CLIENT_INFO, { capabilities: {}, jsonSchemaValidator: validator });
    for (const schema of FORWARDED_NOTIFICATIONS) {
      client.setNotificationHandler(schema, (n: ServerNotification) => {
        if (n.method === 'notifications/tools/list_changed') this.tools = undefined;
        this.onNotification?.(n);
      });
    }
    // The gateway's own progress routing: the SDK's drops a progress notification that arrives together
    // with its call's result (it handles the result first and forgets the token).
    client.setNotificationHandler(ProgressNotificationSchema, (n) => {
      const { progressToken, ...progress } = n.params;
      this.progress.get(String(progressToken))?.(progress);
    });
    const session: Session = { client, transport };
    this.live.add(session);
    try {
      if (this.closed) throw new Error(`mcp ${quote(this.spec.name)} was removed`);
      await client.connect(transport, { timeout: this.handshakeTimeoutMs });
    } catch (err) {
      await this.end(session);
      const exit = transport instanceof ProcessGroupStdioTransport ? transport.describeExit(' before the MCP handshake finished') : undefined;
      if (exit) throw new Error(exit);
      if (err instanceof McpError && err.code === ErrorCode.RequestTimeout) {
        throw new Error(`no answer to initialize within ${this.handshakeTimeoutMs} ms${cfg.type === 'http_mcp' ? ' (mcp_config.timeout)' : ''}`);
      }
      throw new Error(describeError(err));
    }
    this.capabilities = client.getServerCapabilities() ?? {};
    this.serverInfo = client.getServerVersion() ?? CLIENT_INFO;
    this.instructions = client.getInstructions();
    if (this.spec.isStateful) {
      client.onclose = () => {
        if (this.closed) return;
        const stdio = transport instanceof ProcessGroupStdioTransport ? transport : undefined;
        this.failure = stdio?.describeExit('', false) ?? 'the connection to the server closed';
        this.failureStderr = stdio?.stderr.slice(-500) || undefined;
        this.logger.warn({ reason: this.failure, stderr: this.failureStderr }, 'mcp upstream stopped');
      };
    }
    return session;
  }

  private async end(session: Session): Promise<void> {
    this.live.delete(session);
    await endSession(session);
  }

  private goneError(): GatewayError {
    return new GatewayError(
      'upstream',
      `mcp ${quote(this.spec.name)} is not running: ${this.failure}. Register it again (POST /mcps) to restart it.` +
        (this.failureStderr ? ` Its last stderr: ${this.failureStderr}` : ''),
    );
  }

  /** Runs `fn` on a live session: the persistent one, or a fresh one closed afterwards. */
  private async withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    if (this.closed) throw new GatewayError('upstream', `mcp ${quote(this.spec.name)} was removed`);
    if (this.failure) throw this.goneError();
    if (this.session) {
      try {
        return await fn(this.session.client);
      } catch (err) {
        if (this.failure) throw this.goneError();
        throw err;
      }
    }
    const session = await this.connect();
    try {
      return await fn(session.client);
    } finally {
      await this.end(session);
    }
  }

  /** Every tool the server offers (all pages), unfiltered; refreshes the cache. */
  async listTools(): Promise<Tool[]> {
    const tools = await this.withClient(async (client) => {
      const all: Tool[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor === undefined ? undefined : { cursor }, { timeout: this.started ? this.requestTimeoutMs : this.handshakeTimeoutMs });
        all.push(...page.tools);
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      return all;
    });
    this.tools = tools;
    return tools;
  }

  /** A tool by name from the cached list, listing again once if the cache does not know it. */
  async findTool(name: string): Promise<Tool | undefined> {
    const cached = this.tools?.find((t) => t.name === name);
    if (cached) return cached;
    return (await this.listTools()).find((t) => t.name === name);
  }

  /**
   * Calls a tool, bounded by `execution_timeout`; the upstream's own result comes back unchanged.
   * Aborting `opts.signal` cancels the call upstream; `opts.onprogress` receives the call's progress.
   */
  async callTool(name: string, args: Record<string, unknown>, meta?: Record<string, unknown>, opts: Omit<ForwardOptions, 'timeoutMs'> = {}): Promise<CallToolResult> {
    const timeout = this.spec.executionTimeoutMs ?? NO_TIMEOUT_MS;
    // The caller's progress token means nothing upstream: the gateway sends one of its own.
    const { progressToken: _ignored, ...rest } = meta ?? {};
    const token = opts.onprogress ? `sandboxd-${++progressTokens}` : undefined;
    if (token !== undefined) this.progress.set(token, opts.onprogress!);
    const _meta = token !== undefined ? { ...rest, progressToken: token } : Object.keys(rest).length > 0 ? rest : undefined;
    const options: RequestOptions = { timeout, signal: opts.signal };
    try {
      return await this.withClient((client) =>
        client.request({ method: 'tools/call', params: { name, arguments: args, ...(_meta ? { _meta } : {}) } }, CallToolResultSchema, options),
      );
    } catch (err) {
      if (err instanceof McpError && err.code === ErrorCode.RequestTimeout && this.spec.executionTimeoutMs !== undefined) {
        throw new GatewayError(
          'upstream',
          `tool ${quote(name)} of mcp ${quote(this.spec.name)} did not finish within ${this.spec.executionTimeoutMs / 1000} s (execution_timeout)`,
        );
      }
      throw err;
    } finally {
      if (token !== undefined) this.progress.delete(token);
    }
  }

  /** Sends any request to the server (the MCP endpoints forward through this). */
  forward<T>(fn: (client: Client, opts: RequestOptions) => Promise<T>, opts: ForwardOptions = {}): Promise<T> {
    return this.withClient((client) => fn(client, { timeout: opts.timeoutMs ?? this.requestTimeoutMs, signal: opts.signal }));
  }

  /**
   * Replaces the headers sent with every later request (an empty map clears them), without reconnecting;
   * only streamable HTTP upstreams take them, as in AgentScope.
   */
  setRuntimeHeaders(headers: Record<string, string>): void {
    const cfg = this.spec.config;
    if (cfg.type !== 'http_mcp' || cfg.transport !== 'streamable-http') {
      throw new GatewayError('invalid', 'Runtime headers require a Streamable HTTP MCP client.');
    }
    this.runtimeHeaders = { ...headers };
  }

  private get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Ends every session and, for stdio, the server's whole process group; every caller waits for all of it. */
  close(): Promise<void> {
    if (!this.closing) {
      this.session = undefined;
      this.closing = Promise.all([...this.live].map((s) => this.end(s))).then(() => undefined);
    }
    return this.closing;
  }
}

/** Ends a session politely: a streamable HTTP session is deleted on the server, then the transport closes. */
async function endSession(s: Session): Promise<void> {
  if (s.transport instanceof StreamableHTTPClientTransport && s.transport.sessionId !== undefined) {
    await s.transport.terminateSession().catch(() => undefined);
  }
  await s.client.close().catch(() => undefined);
}
