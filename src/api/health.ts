import { Hono } from 'hono';
import type { Env } from './app.js';

export function healthRoutes(): Hono<Env> {
  return new Hono<Env>().get('/health', (c) => {
    c.header('Cache-Control', 'no-store');
    return c.body(null, 204);
  });
}
