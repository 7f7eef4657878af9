import { Hono, type Context } from 'hono';
import { GatewayError } from './errors.js';
import type { McpRegistry, Scope } from './registry.js';
import { parseMcpSpec } from './spec.js';
import { toolChunkFromResult } from './tool-chunk.js';
import type { GatewayEnv } from './app.js';

/** Every route takes `?agent_id=&session_id=` (both default to empty). */
export function scopeOf(c: Context): Scope {
  return { agentId: c.req.query('agent_id') ?? '', sessionId: c.req.query('session_id') ?? '' };
}

/** The body as JSON; `undefined` when empty (each route decides what that means). */
async function jsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new GatewayError('invalid', `body is not valid JSON: ${(err as Error).message}`);
  }
}

/** AgentScope's `/mcps` REST API. */
export function restRoutes(registry: McpRegistry): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  app.get('/mcps', (c) => c.json(registry.list(scopeOf(c)).map((r) => r.spec.raw)));

  app.post('/mcps', async (c) => {
    const body = await jsonBody(c);
    if (body === undefined) throw new GatewayError('invalid', 'body required: an MCP spec as JSON (MCPClient.model_dump())');
    await registry.register(scopeOf(c), parseMcpSpec(body));
    return c.json({ ok: true });
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
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new GatewayError('invalid', 'body must be a JSON object');
    const args = (body as { arguments?: unknown }).arguments ?? {};
    if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new GatewayError('invalid', 'arguments must be a JSON object');
    const result = await registry.callTool(scope, name, c.req.param('tool'), args as Record<string, unknown>);
    return c.json({ chunk: toolChunkFromResult(result) });
  });

  return app;
}
