import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { bindReadOnly, readManifest } from './sandbox.js';

// AgentScope's E2BWorkspace in production mode, once per AgentScope release the Python venvs pin: pytest
// (test/image/python/) creates workspaces through the local control plane, which starts each sandbox from
// the image. The image carries no Node, so every sandbox gets this Node and the repo's node_modules bound
// read-only (server-everything, the stdio MCP server the flow registers); the image itself is untouched.
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SUITE = path.join(REPO, 'test/image/python');
const NODE = '/opt/sandboxd-test/bin/node';
const NODE_MODULES = '/opt/sandboxd-test/node_modules';
const VENVS = [
  { agentscope: '2.0.11', python: path.join(REPO, 'test/python/.venv/bin/python'), setup: 'npm run test:python:setup' },
  { agentscope: '2.0.10', python: path.join(REPO, 'test/python/.venvs/agentscope-2.0.10/bin/python'), setup: 'sh test/python/setup.sh agentscope-2.0.10' },
];

let cp: ControlPlane;

beforeAll(async () => {
  cp = await startControlPlane({
    templates: { base: readManifest() },
    prepare: (sandbox) => {
      bindReadOnly(sandbox, process.execPath, NODE);
      bindReadOnly(sandbox, path.join(REPO, 'node_modules'), NODE_MODULES);
    },
  });
});

afterAll(async () => {
  await cp?.close();
});

/** Runs the suite with one venv's Python; resolves with the exit code and everything it printed. */
function pytest(python: string): Promise<{ code: number | null; output: string }> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...cp.env,
    SANDBOXD_TEST_NODE: NODE,
    SANDBOXD_TEST_SERVER_EVERYTHING: `${NODE_MODULES}/@modelcontextprotocol/server-everything/dist/index.js`,
    PYTHONPYCACHEPREFIX: path.join(path.dirname(path.dirname(python)), 'pycache'),
  };
  delete env.E2B_DEBUG;
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-m', 'pytest', '-q', 'test_e2b_workspace.py'], { cwd: SUITE, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}

describe('AgentScope E2BWorkspace through the local control plane', () => {
  for (const venv of VENVS) {
    it(`passes test/image/python with agentscope ${venv.agentscope}`, { timeout: 600_000 }, async () => {
      if (!existsSync(venv.python)) throw new Error(`${venv.python} is missing: run \`${venv.setup}\` first (outside the test's network namespace)`);
      const { code, output } = await pytest(venv.python);
      process.stdout.write(`--- pytest, agentscope ${venv.agentscope} ---\n${output}\n`);
      expect(output).toContain(`with agentscope ${venv.agentscope}:`);
      expect(code, output).toBe(0);
      // Every sandbox the suite made was closed (paused) or killed; none is left running.
      expect(cp.sandboxes().filter((s) => s.state === 'running').map((s) => s.id)).toEqual([]);
    });
  }
});
