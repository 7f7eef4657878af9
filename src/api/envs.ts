import { Hono } from 'hono';
import type { ServiceDeps } from '../services/context.js';
import type { Env } from './app.js';

export function envsRoutes(deps: ServiceDeps): Hono<Env> {
  return new Hono<Env>().get('/envs', (c) => {
    c.header('Cache-Control', 'no-store');
    return c.json(Object.fromEntries(deps.state.envVars));
  });
}
