import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, pytest, spawnControlPlane, type ControlPlaneProcess } from './pytest.js';

// The Python e2b SDK in production mode (test/image/python/test_production.py) against the control plane run
// as its own process, as a Python-only user would run it, with test/python's pinned venv.
let cp: ControlPlaneProcess;

beforeAll(async () => {
  // run.ts made the venv before entering this network namespace (pip needs the network).
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run npm run test:python:setup`);
  cp = await spawnControlPlane();
});

afterAll(async () => {
  await cp?.stop();
});

describe('the Python SDK in production mode', () => {
  it('passes test_production.py through the control plane and the proxy', async () => {
    const { code, output } = await pytest(cp.env, 'test_production.py');
    process.stdout.write(output);
    expect(code, output).toBe(0);
    expect(output).toMatch(/\b\d+ passed\b/);
    expect(output).not.toMatch(/\b(failed|skipped|errors?)\b/);
    // Every sandbox the suite made, it killed.
    const left = await fetch(`${cp.apiUrl}/v2/sandboxes`, { headers: { 'X-API-Key': cp.apiKey } });
    expect(await left.json()).toEqual([]);
  }, 300_000);

  it('stops the standalone control plane cleanly on SIGTERM', async () => {
    expect(await cp.stop()).toBe(0);
    process.stdout.write(cp.log());
  });
});
