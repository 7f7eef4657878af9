import { Hono } from 'hono';
import type { HttpBindings, Http2Bindings } from '@hono/node-server';
import type { ServiceDeps } from '../services/context.js';
import { authorizeGatewayRequest } from './auth.js';
import { GatewayError, STATUS_OF } from './errors.js';
import { mcpEndpoints } from './mcp-endpoints.js';
import { McpRegistry } from './registry.js';
import { restRoutes } from './rest.js';

export type GatewayEnv = { Bindings: HttpBindings | Http2Bindings };

export interface Gateway {
  app: Hono<GatewayEnv>;
  registry: McpRegistry;
  /** Stops every registered MCP server (their process groups included). */
  close(): Promise<void>;
}

function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The MCP gateway (port 5600): `/health`, AgentScope's `/mcps` REST API and the MCP endpoints.
 * Headers an E2B-style client proxy adds (`E2b-Sandbox-Id`, `E2b-Sandbox-Port`) are simply ignored.
 */
export function createGateway(deps: ServiceDeps): Gateway {
  const logger = deps.logger.child({ face: 'gateway' });
  const registry = new McpRegistry(logger);
  const app = new Hono<GatewayEnv>();

  app.get('/health', (c) => {
    const nonce = deps.config.instanceNonce;
    if (nonce !== undefined) return c.json({ status: 'ok', instance_nonce: nonce });
    return c.text('ok');
  });

  app.use('*', async (c, next) => {
    const incoming = c.env.incoming;
    const decision = authorizeGatewayRequest({
      gatewayToken: deps.config.gatewayToken,
      accessToken: deps.state.accessToken,
      authorization: firstHeader(incoming.headers.authorization),
      xAccessToken: firstHeader(incoming.headers['x-access-token']),
      remoteAddress: incoming.socket?.remoteAddress,
    });
    if (decision.ok) return next();
    if (decision.status === 401) c.header('WWW-Authenticate', 'Bearer');
    return c.json({ detail: decision.detail }, decision.status);
  });

  app.route('/', restRoutes(registry));
  app.route('/', mcpEndpoints(registry, logger));

  app.notFound((c) => c.json({ detail: 'Not Found' }, 404));
  app.onError((err, c) => {
    if (err instanceof GatewayError) return c.json({ detail: err.message }, STATUS_OF[err.kind]);
    logger.error({ err, path: c.req.path }, 'gateway request failed');
    return c.json({ detail: 'internal error' }, 500);
  });

  return { app, registry, close: () => registry.closeAll() };
}
