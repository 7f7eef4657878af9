import { Hono } from 'hono';
import type { ServiceDeps } from '../services/context.js';
import type { FaceEnv } from '../face.js';

export function envsRoutes(deps: ServiceDeps): Hono<FaceEnv> {
  return new Hono<FaceEnv>().get('/envs', (c) => {
    c.header('Cache-Control', 'no-store');
    return c.json(Object.fromEntries(deps.state.envVars));
  });
}
