import { Hono } from 'hono';
import { MetricsSampler } from '../system/metrics.js';
import type { FaceEnv } from '../face.js';

export function metricsRoutes(): Hono<FaceEnv> {
  const sampler = new MetricsSampler();
  void sampler.prime();
  return new Hono<FaceEnv>().get('/metrics', async (c) => {
    c.header('Cache-Control', 'no-store');
    return c.json(await sampler.sample());
  });
}
