import { Hono } from 'hono';
import { MetricsSampler } from '../system/metrics.js';
import type { Env } from './app.js';

export function metricsRoutes(): Hono<Env> {
  const sampler = new MetricsSampler();
  void sampler.prime();
  return new Hono<Env>().get('/metrics', async (c) => {
    c.header('Cache-Control', 'no-store');
    return c.json(await sampler.sample());
  });
}
