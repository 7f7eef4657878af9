import { Hono } from 'hono';
import type { ServiceDeps } from '../services/context.js';
import type { FaceEnv } from '../face.js';

/**
 * envd's pre-pause endpoints (`/freeze`, `/unfreeze`, `/fsfreeze`, `/fsthaw`) serve E2B's
 * orchestrator, which freezes the workload's cgroups and the rootfs around a Firecracker snapshot.
 * Nothing here pauses, so they are accepted and ignored: 204, as envd answers when asked not to
 * wait, and a debug log line.
 */
const IGNORED = ['/freeze', '/unfreeze', '/fsfreeze', '/fsthaw'];

export function freezeRoutes(deps: ServiceDeps): Hono<FaceEnv> {
  const app = new Hono<FaceEnv>();
  for (const route of IGNORED) {
    app.post(route, (c) => {
      deps.logger.debug({ route, query: c.req.query() }, 'E2B infrastructure endpoint ignored: sandboxd does not pause sandboxes');
      c.header('Cache-Control', 'no-store');
      return c.body(null, 204);
    });
  }
  return app;
}
