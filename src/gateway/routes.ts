import { Hono } from 'hono';
import type { Logger } from '../log.js';
import type { FaceEnv } from '../face.js';
import { GatewayError, STATUS_OF } from './errors.js';
import { mcpEndpoints, type McpEndpointOptions } from './mcp-endpoints.js';
import { McpRegistry } from './registry.js';
import { restRoutes } from './rest.js';

export interface GatewayRoutes {
  app: Hono<FaceEnv>;
  registry: McpRegistry;
  /** Ends every MCP session, then stops every registered server. */
  close(): Promise<void>;
}

/** Everything behind the gateway's auth: the `/mcps` REST API and the MCP endpoints, over one registry. */
export function createGatewayRoutes(logger: Logger, mcp: McpEndpointOptions): GatewayRoutes {
  const registry = new McpRegistry(logger);
  const app = new Hono<FaceEnv>();
  const endpoints = mcpEndpoints(registry, logger, mcp);
  app.route('/', restRoutes(registry));
  app.route('/', endpoints.app);
  app.notFound((c) => c.json({ detail: 'Not Found' }, 404));
  app.onError((err, c) => {
    if (err instanceof GatewayError) return c.json({ detail: err.message }, STATUS_OF[err.kind]);
    logger.error({ err, path: c.req.path }, 'gateway request failed');
    return c.json({ detail: 'internal error' }, 500);
  });
  return {
    app,
    registry,
    async close() {
      await endpoints.close();
      await registry.closeAll();
    },
  };
}
