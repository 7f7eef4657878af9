import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { ServerNotification } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../log.js';
import type { FaceEnv } from '../face.js';
import { describeError } from './errors.js';
import { BoundedEventStore } from './event-store.js';
import { aggregatedNotification, aggregateServer, forwardingServer } from './mcp-servers.js';
import { scopeKey, type McpRegistry, type RegistryEvent, type Scope } from './registry.js';
import { MAX_BODY_BYTES, scopeOf } from './rest.js';

export { splitAggregatedName, TOOL_SEPARATOR } from './mcp-servers.js';

export interface McpEndpointOptions {
  /** A session with no request in flight and no open stream ends after this long. */
  sessionIdleMs: number;
  /** Open sessions at most; initialize beyond it answers 503. */
  maxSessions?: number;
  /** Unread bytes a response stream may hold before the gateway cuts it (the client resumes with Last-Event-ID). */
  maxUnreadBytes?: number;
}

const DEFAULT_MAX_SESSIONS = 1000;
const DEFAULT_MAX_UNREAD_BYTES = 1024 * 1024;

/** One MCP session: its own server, bound to the (agent, session) pair and endpoint that opened it. */
interface McpSession {
  id: string;
  scope: Scope;
  scopeKey: string;
  /** The MCP of `/mcps/{name}/mcp`, or undefined for the aggregated `/mcp`. */
  mcp: string | undefined;
  server: Server;
  transport: WebStandardStreamableHTTPServerTransport;
  /** Requests being answered and response streams still open; the idle clock runs only at zero. */
  busy: number;
  idleTimer: NodeJS.Timeout | undefined;
  closed: boolean;
}

function rpcError(c: Context, status: 400 | 403 | 404 | 405 | 503, code: number, message: string): Response {
  return c.json({ jsonrpc: '2.0', error: { code, message }, id: null }, status);
}

const isInitialize = (body: unknown) => (Array.isArray(body) ? body : [body]).some((m) => typeof m === 'object' && m !== null && (m as { method?: unknown }).method === 'initialize');

/**
 * Passes a response stream through with at most `limit` bytes waiting for a client that does not read.
 * Past that (and once more than one event waits) the stream is cut, its queue dropped and `onCut` told;
 * the events stay in the session's event store for a `Last-Event-ID` resume. `onEnd` runs once, however it ends.
 */
function boundedStream(body: ReadableStream<Uint8Array>, limit: number, onCut: () => void, onEnd: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const queue: Uint8Array[] = [];
  let queued = 0;
  let ended = false;
  let wake: (() => void) | undefined;
  let ends = () => {
    ends = () => undefined;
    onEnd();
  };
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || ended) break;
        queue.push(value);
        queued += value.byteLength;
        if (queued > limit && queue.length > 1) {
          queue.length = 0;
          queued = 0;
          onCut();
          void reader.cancel('the client is not reading its stream').catch(() => undefined);
          break;
        }
        wake?.();
      }
    } catch {
      // the source failed: end what the client sees
    }
    ended = true;
    wake?.();
  })();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        while (queue.length === 0 && !ended) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        const next = queue.shift();
        if (next) {
          queued -= next.byteLength;
          controller.enqueue(next);
          return;
        }
        controller.close();
        ends();
      },
      cancel(reason) {
        ended = true;
        queue.length = 0;
        ends();
        return reader.cancel(reason).catch(() => undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * MCP sessions (the SDK's session-id mode, `Mcp-Session-Id`) on `/mcp` and `/mcps/{name}/mcp`, and the
 * stateless answer for a POST that carries no session and is not an initialize.
 */
class McpSessions {
  private readonly sessions = new Map<string, McpSession>();
  private readonly maxSessions: number;
  private readonly maxUnreadBytes: number;

  constructor(
    private readonly registry: McpRegistry,
    private readonly logger: Logger,
    private readonly opts: McpEndpointOptions,
  ) {
    this.maxSessions = opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.maxUnreadBytes = opts.maxUnreadBytes ?? DEFAULT_MAX_UNREAD_BYTES;
    registry.subscribe((e) => this.onRegistryEvent(e));
  }

  private serverFor(scope: Scope, mcp: string | undefined): Server {
    return mcp === undefined ? aggregateServer(this.registry, scope, this.logger) : forwardingServer(this.registry.get(scope, mcp));
  }

  async handle(c: Context, mcp: string | undefined): Promise<Response> {
    const scope = scopeOf(c);
    if (mcp !== undefined) this.registry.get(scope, mcp); // an unknown MCP is a 404 before anything else
    const id = c.req.header('mcp-session-id');
    if (id !== undefined) return this.inSession(c, id, scope, mcp);
    if (c.req.method !== 'POST') {
      return rpcError(c, 400, -32000, `Bad Request: ${c.req.method} needs an Mcp-Session-Id header (open a session with initialize)`);
    }
    let body: unknown;
    try {
      body = JSON.parse(await c.req.text());
    } catch (err) {
      return rpcError(c, 400, -32700, `Parse error: ${(err as Error).message}`);
    }
    if (isInitialize(body)) return this.open(c, body, scope, mcp);
    return this.stateless(c, body, this.serverFor(scope, mcp));
  }

  /** A POST without a session, answered by a fresh server and transport (JSON, no server-to-client messages). */
  private async stateless(c: Context, body: unknown, server: Server): Promise<Response> {
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true, maxRequestBodySize: MAX_BODY_BYTES });
    await server.connect(transport);
    // The client going away cancels what it asked for (closing the server aborts its handlers).
    const stop = () => void server.close();
    c.req.raw.signal.addEventListener('abort', stop, { once: true });
    try {
      return await transport.handleRequest(c.req.raw, { parsedBody: body });
    } finally {
      c.req.raw.signal.removeEventListener('abort', stop);
      void server.close();
    }
  }

  private async open(c: Context, body: unknown, scope: Scope, mcp: string | undefined): Promise<Response> {
    if (this.sessions.size >= this.maxSessions) return rpcError(c, 503, -32000, `too many MCP sessions open (${this.maxSessions}); end one with DELETE`);
    const server = this.serverFor(scope, mcp);
    let session: McpSession | undefined;
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore: new BoundedEventStore(),
      maxRequestBodySize: MAX_BODY_BYTES,
      onsessioninitialized: (id) => {
        session = { id, scope, scopeKey: scopeKey(scope), mcp, server, transport, busy: 0, idleTimer: undefined, closed: false };
        this.sessions.set(id, session);
        this.logger.debug({ mcpSession: id, agentId: scope.agentId, sessionId: scope.sessionId, mcp }, 'mcp session opened');
      },
      onsessionclosed: (id) => void this.close(id, 'ended by the client'),
    });
    await server.connect(transport);
    const res = await transport.handleRequest(c.req.raw, { parsedBody: body });
    if (!session) {
      void server.close(); // the initialize was refused
      return res;
    }
    return this.track(session, res);
  }

  private async inSession(c: Context, id: string, scope: Scope, mcp: string | undefined): Promise<Response> {
    const session = this.sessions.get(id);
    if (!session) return rpcError(c, 404, -32001, `Session not found: ${id} (it expired or was ended; initialize a new one)`);
    if (session.scopeKey !== scopeKey(scope) || session.mcp !== mcp) {
      return rpcError(c, 403, -32000, `Forbidden: session ${id} belongs to another agent_id/session_id pair or endpoint`);
    }
    this.busy(session, +1);
    let res: Response;
    try {
      res = await session.transport.handleRequest(c.req.raw);
    } catch (err) {
      this.busy(session, -1);
      throw err;
    }
    this.busy(session, -1);
    if (c.req.method === 'GET' && res.ok) this.logger.debug({ mcpSession: id, resumed: c.req.header('last-event-id') !== undefined }, 'mcp session stream opened');
    return this.track(session, res);
  }

  /** Keeps the session busy while a response stream is open, and bounds what that stream may hold unread. */
  private track(session: McpSession, res: Response): Response {
    if (!res.body || !res.headers.get('content-type')?.startsWith('text/event-stream')) {
      this.busy(session, 0);
      return res;
    }
    this.busy(session, +1);
    const body = boundedStream(
      res.body,
      this.maxUnreadBytes,
      () => this.logger.warn({ mcpSession: session.id, limit: this.maxUnreadBytes }, 'mcp stream cut: the client is not reading it'),
      () => this.busy(session, -1),
    );
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  }

  private busy(session: McpSession, delta: number): void {
    session.busy += delta;
    clearTimeout(session.idleTimer);
    session.idleTimer = undefined;
    if (session.busy === 0 && !session.closed) {
      session.idleTimer = setTimeout(() => void this.close(session.id, 'idle'), this.opts.sessionIdleMs);
      session.idleTimer.unref();
    }
  }

  async close(id: string, why: string): Promise<void> {
    const session = this.sessions.get(id);
    if (!session || session.closed) return;
    session.closed = true;
    clearTimeout(session.idleTimer);
    this.sessions.delete(id);
    this.logger.info({ mcpSession: id, why }, 'mcp session closed');
    await session.server.close().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((id) => this.close(id, 'the gateway is shutting down')));
  }

  /** The sessions a scope's change reaches: `/mcp` ones of the scope, and the MCP's own endpoint's. */
  private onRegistryEvent(e: RegistryEvent): void {
    const key = scopeKey(e.scope);
    for (const s of [...this.sessions.values()]) {
      if (s.scopeKey !== key) continue;
      if (s.mcp === undefined) {
        if (e.kind === 'notification') this.notify(s, aggregatedNotification(e.mcp, e.notification));
        else {
          this.notify(s, { method: 'notifications/tools/list_changed' });
          this.notify(s, { method: 'notifications/resources/list_changed' });
          this.notify(s, { method: 'notifications/prompts/list_changed' });
        }
      } else if (s.mcp === e.mcp) {
        if (e.kind === 'notification') this.notify(s, e.notification);
        // The server this session forwarded to is gone: so is the session (a client re-initializes).
        else if (e.kind === 'removed') void this.close(s.id, 'its mcp was removed');
      }
    }
  }

  private notify(s: McpSession, n: ServerNotification): void {
    const send = n.method === 'notifications/message' ? s.server.sendLoggingMessage(n.params, s.id) : s.server.notification(n);
    send.catch((err: unknown) => this.logger.debug({ mcpSession: s.id, method: n.method, err: describeError(err) }, 'mcp notification not sent'));
  }
}

export interface McpEndpoints {
  app: Hono<FaceEnv>;
  close(): Promise<void>;
}

/** `/mcp` (the pair's MCPs aggregated) and `/mcps/{name}/mcp` (one MCP forwarded), POST, GET and DELETE. */
export function mcpEndpoints(registry: McpRegistry, logger: Logger, opts: McpEndpointOptions): McpEndpoints {
  const sessions = new McpSessions(registry, logger, opts);
  const app = new Hono<FaceEnv>();
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => c.json({ jsonrpc: '2.0', error: { code: -32600, message: `request body larger than ${MAX_BODY_BYTES} bytes` }, id: null }, 413),
  });
  app.use('/mcp', limit);
  app.use('/mcps/:name/mcp', limit);
  app.on(['POST', 'GET', 'DELETE'], '/mcp', (c) => sessions.handle(c, undefined));
  app.on(['POST', 'GET', 'DELETE'], '/mcps/:name/mcp', (c) => sessions.handle(c, c.req.param('name')));
  return { app, close: () => sessions.closeAll() };
}
