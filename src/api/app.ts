import { Hono } from 'hono';
import type { FaceEnv } from '../face.js';
import type { ServiceDeps } from '../services/context.js';
import { ConnectError } from '@connectrpc/connect';
import { envsRoutes } from './envs.js';
import { filesRoutes } from './files.js';
import { freezeRoutes } from './freeze.js';
import { healthRoutes } from './health.js';
import { initRoutes } from './init.js';
import { metricsRoutes } from './metrics.js';
import { HttpError, jsonError } from './errors.js';

/** envd's HTTP API; RPC paths never reach it (the Connect adapter takes them first). */
export function createApiApp(deps: ServiceDeps): Hono<FaceEnv> {
  const app = new Hono<FaceEnv>();
  app.route('/', healthRoutes());
  app.route('/', initRoutes(deps));
  app.route('/', envsRoutes(deps));
  app.route('/', metricsRoutes());
  app.route('/', filesRoutes(deps));
  app.route('/', freezeRoutes(deps));
  app.notFound((c) => c.text('404 page not found\n', 404));
  app.onError((err, c) => {
    if (err instanceof HttpError) return jsonError(c, err.status, err.message);
    if (err instanceof ConnectError) return jsonError(c, 500, err.rawMessage);
    deps.logger.error({ err, path: c.req.path }, 'request failed');
    return jsonError(c, 500, 'internal error');
  });
  return app;
}
