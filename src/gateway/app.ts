import { Hono } from 'hono';
import type { FaceEnv } from '../face.js';
import type { ServiceDeps } from '../services/context.js';
import { authorizeGatewayRequest } from './auth.js';
import type { GatewayRoutes } from './routes.js';

export interface Gateway {
  app: Hono<FaceEnv>;
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
  const app = new Hono<FaceEnv>();

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
      remotePort: incoming.socket?.remotePort,
    });
    if (decision.ok) return next();
    if (decision.status === 401) c.header('WWW-Authenticate', 'Bearer');
    return c.json({ detail: decision.detail }, decision.status);
  });

  // The MCP SDK and the registry load on the first request that needs them: a daemon that never
  // serves MCP keeps its startup time and memory (the SDK costs ~180 ms and ~17 MiB to load).
  let routes: Promise<GatewayRoutes> | undefined;
  const load = () => (routes ??= import('./routes.js').then((m) => m.createGatewayRoutes(logger, { sessionIdleMs: deps.config.gatewaySessionIdleMs })));
  app.all('*', async (c) => (await load()).app.fetch(c.req.raw, c.env));

  return {
    app,
    async close() {
      if (routes) await (await routes).close();
    },
  };
}
