import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routerKeys, signToken } from '../integration/picod-support.js';
import { parseDockerfile } from './dockerfile.js';
import { connectVeth, readManifest, removeLink, startSandbox, stopSandbox, type RunningSandbox } from './sandbox.js';

// The image as AgentCube's workload manager starts it: the CodeInterpreter's `args` replace CMD
// (`--workspace=/root`, as AgentCube's examples pass) and the router's public key is in the environment.
// Reached over its own veth pair on TEST-NET-3, so it never meets the other rootfs test's sandbox.
const OUTSIDE_IP = '203.0.113.1';
const SANDBOX_IP = '203.0.113.2';
const OUTSIDE_LINK = 'sbxpicod0';
const PICOD = `http://${SANDBOX_IP}:8080`;
const ENVD = `http://${SANDBOX_IP}:49983`;

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const manifest = readManifest();
const runtime = parseDockerfile(readFileSync(path.join(REPO, 'Dockerfile.envd'), 'utf8')).at(-1)!;
const router = routerKeys();

let sandbox: RunningSandbox;

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  let last: unknown = 'no answer yet';
  for (let i = 0; i < 80; i++) {
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: gave up; last: ${last instanceof Error ? last.message : String(last)}`);
}

beforeAll(async () => {
  sandbox = await startSandbox({
    ...manifest,
    argv: [...runtime.entrypoint, '--workspace=/root'],
    env: { ...manifest.env, PICOD_AUTH_PUBLIC_KEY: router.publicPem },
  });
  connectVeth(sandbox, { name: OUTSIDE_LINK, cidr: `${OUTSIDE_IP}/24` }, `${SANDBOX_IP}/24`);
  await until('PicoD answers over the veth', async () => (await fetch(`${PICOD}/health`, { signal: AbortSignal.timeout(5000) })).status === 200);
});

afterAll(async () => {
  if (sandbox) await stopSandbox(sandbox, 2_000);
  removeLink(OUTSIDE_LINK);
});

describe('the image under AgentCube', () => {
  it('serves PicoD on 8080 and envd on 49983 when CMD is replaced by --workspace=/root', async () => {
    const picod = await sandbox.waitForLog((r) => r.msg === 'picod face listening', 'picod face listening');
    expect(picod).toMatchObject({ port: 8080, hosts: ['::'] });
    expect(await (await fetch(`${PICOD}/health`)).json()).toMatchObject({ status: 'ok', service: 'PicoD' });
    expect((await fetch(`${ENVD}/health`)).status).toBe(204);
  });

  it('runs commands in /root as root for a router token, and refuses requests without one', async () => {
    const auth = { authorization: `Bearer ${signToken(router.privateKey)}`, 'content-type': 'application/json' };
    const res = await fetch(`${PICOD}/api/execute`, { method: 'POST', headers: auth, body: JSON.stringify({ command: ['sh', '-c', 'pwd; id -u'] }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ stdout: '/root\n0\n', exit_code: 0 });
    const up = await fetch(`${PICOD}/api/files`, { method: 'POST', headers: auth, body: JSON.stringify({ path: '/notes.txt', content: Buffer.from('in the image').toString('base64') }) });
    expect(await up.json()).toMatchObject({ path: 'notes.txt', size: 12 });
    const down = await fetch(`${PICOD}/api/files/notes.txt`, { headers: { authorization: auth.authorization } });
    expect(await down.text()).toBe('in the image');
    expect((await fetch(`${PICOD}/api/execute`, { method: 'POST', body: '{"command":["id"]}' })).status).toBe(401);
  });
});
