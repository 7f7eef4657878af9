import { Hono } from 'hono';
import type { FaceEnv } from '../face.js';

export function healthRoutes(): Hono<FaceEnv> {
  return new Hono<FaceEnv>().get('/health', (c) => {
    c.header('Cache-Control', 'no-store');
    return c.body(null, 204);
  });
}
