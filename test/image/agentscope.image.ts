import path from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, pytest, spawnControlPlane, type ControlPlaneProcess } from './pytest.js';

// AgentScope's E2BWorkspace in production mode (test/image/python/test_e2b_workspace.py), once per AgentScope
// release the Python venvs pin, through the control plane run as its own process. The image carries no Node,
// so every sandbox gets this Node and the repo's node_modules bound read-only (server-everything, the stdio
// MCP server the flow registers); the image itself is untouched.
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NODE = '/opt/sandboxd-test/bin/node';
const NODE_MODULES = '/opt/sandboxd-test/node_modules';
const VENVS = [
  { agentscope: '2.0.11', python: PYTHON, setup: 'npm run test:python:setup' },
  { agentscope: '2.0.10', python: path.join(REPO, 'test/python/.venvs/agentscope-2.0.10/bin/python'), setup: 'sh test/python/setup.sh agentscope-2.0.10' },
];

let cp: ControlPlaneProcess;

beforeAll(async () => {
  cp = await spawnControlPlane(['--bind', `${process.execPath}:${NODE}`, '--bind', `${path.join(REPO, 'node_modules')}:${NODE_MODULES}`]);
});

afterAll(async () => {
  await cp?.stop();
});

describe('AgentScope E2BWorkspace through the local control plane', () => {
  for (const venv of VENVS) {
    it(`passes test_e2b_workspace.py with agentscope ${venv.agentscope}`, { timeout: 600_000 }, async () => {
      // The test runs in a network namespace without PyPI: venvs are made beforehand.
      if (!existsSync(venv.python)) throw new Error(`${venv.python} is missing: run \`${venv.setup}\` first`);
      const env = {
        ...cp.env,
        SANDBOXD_TEST_NODE: NODE,
        SANDBOXD_TEST_SERVER_EVERYTHING: `${NODE_MODULES}/@modelcontextprotocol/server-everything/dist/index.js`,
      };
      const { code, output } = await pytest(env, 'test_e2b_workspace.py', { python: venv.python });
      process.stdout.write(`--- pytest, agentscope ${venv.agentscope} ---\n${output}\n`);
      expect(code, output).toBe(0);
      expect(output).toContain(`with agentscope ${venv.agentscope}:`);
      expect(output).not.toMatch(/\b(failed|skipped|errors?)\b/);
      // Every sandbox the suite made it paused (close) or killed; none is left running.
      const running = await fetch(`${cp.apiUrl}/v2/sandboxes?state=running`, { headers: { 'X-API-Key': cp.apiKey } });
      expect(await running.json()).toEqual([]);
    });
  }
});
