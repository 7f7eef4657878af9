import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startSdkDaemon } from '../helpers/sdk.js';
import { EVERYTHING, waitUntilGone } from './gateway-support.js';

/**
 * What AgentScope's host side does through `exec_shell`: a python3 script using only the standard
 * library talks to the gateway on the sandbox's loopback and prints what it got as one JSON line.
 */
const HOST_SCRIPT = `
import json, sys, urllib.error, urllib.parse, urllib.request

base = "http://127.0.0.1:5600"
node, everything, marker = sys.argv[1], sys.argv[2], sys.argv[3]
scope = "?" + urllib.parse.urlencode({"agent_id": "host-agent", "session_id": "s-1"})

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    text = raw.decode()
    try:
        return {"status": status, "body": json.loads(text)}
    except ValueError:
        return {"status": status, "body": text}

spec = {
    "name": "everything",
    "is_stateful": True,
    "mcp_config": {"type": "stdio_mcp", "command": node, "args": [everything, "stdio", marker], "env": None, "cwd": None},
    "enable_tools": None,
    "disable_tools": None,
    "execution_timeout": None,
}
out = {
    "health": call("GET", "/health"),
    "register": call("POST", "/mcps" + scope, spec),
    "list": call("GET", "/mcps" + scope),
    "echo": call("POST", "/mcps/everything/tools/echo" + scope, {"arguments": {"message": "from python"}}),
    "delete": call("DELETE", "/mcps/everything" + scope),
}
print(json.dumps(out))
`;

describe("AgentScope's real path: a python3 script run through the SDK's commands.run", () => {
  let daemon: RunningDaemon;
  let sandbox: Sandbox;
  beforeAll(async () => {
    ({ daemon, sandbox } = await startSdkDaemon({ gatewayPort: 5600 }));
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('reaches http://127.0.0.1:5600/health and calls a tool', async (ctx) => {
    if (spawnSync('python3', ['--version']).status !== 0) {
      console.log('skipped: python3 is not installed on this machine');
      ctx.skip();
    }
    // The process service answers `unimplemented` until it exists; only that is a reason to skip.
    const probe = await sandbox.commands.run('true').then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    if (probe && /unimplemented/i.test(`${probe.name} ${probe.message}`)) {
      console.log(`skipped: process.Process/Start is not implemented yet (${probe.message})`);
      ctx.skip();
    }
    expect(probe).toBeUndefined();

    const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-gw-py-'));
    const script = path.join(dir, 'host_call.py');
    writeFileSync(script, HOST_SCRIPT);
    const marker = `sbx-gw-py-${randomUUID()}`;
    const run = await sandbox.commands.run(`python3 ${script} ${process.execPath} ${EVERYTHING} ${marker}`);
    expect(run.exitCode).toBe(0);
    const out = JSON.parse(run.stdout.trim()) as Record<string, { status: number; body: unknown }>;

    expect(out.health).toEqual({ status: 200, body: 'ok' });
    expect(out.register).toEqual({ status: 200, body: { ok: true } });
    expect(out.list!.status).toBe(200);
    expect((out.list!.body as { name: string }[]).map((s) => s.name)).toEqual(['everything']);
    expect(out.echo!.status).toBe(200);
    const chunk = (out.echo!.body as { chunk: { state: string; content: { type: string; text: string }[] } }).chunk;
    expect(chunk.state).toBe('running');
    expect(chunk.content).toEqual([expect.objectContaining({ type: 'text', text: 'Echo: from python' })]);
    expect(out.delete).toEqual({ status: 200, body: { ok: true } });
    expect(await waitUntilGone(marker)).toEqual([]);
  });
});
