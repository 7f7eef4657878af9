import { Hono } from 'hono';
import type { ServiceDeps } from '../services/context.js';

/** The MCP gateway's HTTP app (port 5600). */
export function createGatewayApp(deps: ServiceDeps): Hono {
  const app = new Hono();
  app.get('/health', (c) => {
    const nonce = deps.config.instanceNonce;
    if (nonce !== undefined) return c.json({ status: 'ok', instance_nonce: nonce });
    return c.text('ok');
  });
  app.notFound((c) => c.json({ detail: 'Not Found' }, 404));
  return app;
}
