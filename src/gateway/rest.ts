import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { GatewayError } from './errors.js';
import type { McpRegistry, Scope } from './registry.js';
import { parseMcpSpec, parseRuntimeHeaders } from './spec.js';
import { toolChunkFromResult } from './tool-chunk.js';
import type { FaceEnv } from '../face.js';

/** Largest request body the gateway reads (tool arguments can carry file contents; the MCP SDK's default is 4 MiB). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Every route takes `?agent_id=&session_id=` (both default to empty). */
export function scopeOf(c: Context): Scope {
  return { agentId: c.req.query('agent_id') ?? '', sessionId: c.req.query('session_id') ?? '' };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const TOO_LARGE = `request body larger than ${MAX_BODY_BYTES} bytes`;

/** A body whose Content-Length is over the limit is refused unread. */
const limit: MiddlewareHandler<FaceEnv> = async (c, next) => {
  if (Number(c.env.incoming.headers['content-length'] ?? 0) > MAX_BODY_BYTES) return c.json({ detail: TOO_LARGE }, 413);
  await next();
};

/**
 * The body as JSON; `undefined` when empty (each route decides what that means). It is read from
 * the Node request itself, at most MAX_BODY_BYTES of it: Hono's Request view (and its body-limit
 * middleware) built a web stream and an undici Request for every call, a tenth of the gateway's
 * CPU per REST tool call in a profile.
 */
function jsonBody(c: Context<FaceEnv>): Promise<unknown> {
  const incoming = c.env.incoming;
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', done);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size).toString('utf8'));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      // What is left unread is drained (or the connection closed) once the answer is out.
      if (size > MAX_BODY_BYTES) done(new GatewayError('too_large', TOO_LARGE));
      else chunks.push(chunk);
    };
    const onEnd = (): void => done();
    if (incoming.readableEnded) return resolve('');
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', done);
  }).then((text) => {
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new GatewayError('invalid', `body is not valid JSON: ${(err as Error).message}`);
    }
  });
}

/** AgentScope's `/mcps` REST API. */
export function restRoutes(registry: McpRegistry): Hono<FaceEnv> {
  const app = new Hono<FaceEnv>();
  app.use('/mcps', limit);
  app.use('/mcps/*', limit);

  app.get('/mcps', (c) => c.json(registry.list(scopeOf(c)).map((r) => r.spec.raw)));

  app.post('/mcps', async (c) => {
    const body = await jsonBody(c);
    if (body === undefined) throw new GatewayError('invalid', 'body required: an MCP spec as JSON (MCPClient.model_dump())');
    // Rotated credentials ride along with the spec but are never stored with it (GET /mcps omits them).
    let spec = body;
    let runtimeHeaders: Record<string, string> | undefined;
    if (isObject(body)) {
      const { runtime_headers: given, ...rest } = body;
      spec = rest;
      if (given !== undefined && given !== null) runtimeHeaders = parseRuntimeHeaders(given);
    }
    const hasRuntime = runtimeHeaders !== undefined && Object.keys(runtimeHeaders).length > 0;
    await registry.register(scopeOf(c), parseMcpSpec(spec), hasRuntime ? runtimeHeaders : undefined);
    return c.json({ ok: true });
  });

  app.put('/mcps/:name/runtime-headers', async (c) => {
    const body = await jsonBody(c);
    const headers = isObject(body) ? body.headers : undefined;
    if (!isObject(headers)) throw new GatewayError('invalid', 'headers must be a JSON object');
    const scope = scopeOf(c);
    const name = c.req.param('name');
    registry.get(scope, name); // an unknown MCP is a 404 before the headers are judged, as in AgentScope
    registry.setRuntimeHeaders(scope, name, parseRuntimeHeaders(headers));
    return c.body(null, 204);
  });

  app.delete('/mcps/:name', async (c) => {
    await registry.remove(scopeOf(c), c.req.param('name'));
    return c.json({ ok: true });
  });

  app.get('/mcps/:name/tools', async (c) => c.json(await registry.listTools(scopeOf(c), c.req.param('name'))));

  app.post('/mcps/:name/tools/:tool', async (c) => {
    const scope = scopeOf(c);
    const name = c.req.param('name');
    registry.get(scope, name); // an unknown MCP is a 404 whatever the body
    const body = (await jsonBody(c)) ?? {};
    if (!isObject(body)) throw new GatewayError('invalid', 'body must be a JSON object');
    const args = body.arguments ?? {};
    if (!isObject(args)) throw new GatewayError('invalid', 'arguments must be a JSON object');
    // A host that goes away (AgentScope's shim is killed at its timeout) cancels the call upstream.
    const result = await registry.callTool(scope, name, c.req.param('tool'), args, { signal: c.req.raw.signal });
    return c.json({ chunk: toolChunkFromResult(result, registry.get(scope, name).spec.chunkDialect) });
  });

  return app;
}
