import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { AuthenticationError, Sandbox, SandboxNotFoundError } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { readManifest } from './sandbox.js';

// The JS SDK in production mode (no debug): it finds the sandboxes through E2B_API_URL, reaches them only
// through the client proxy at E2B_SANDBOX_URL (E2b-Sandbox-Id / E2b-Sandbox-Port headers), and every sandbox
// is the image with a token of its own, set by the control plane's POST /init.
const manifest = readManifest();
let cp: ControlPlane;
let a: Sandbox;
let b: Sandbox;
const run = randomBytes(4).toString('hex');

/** A request through the proxy (to envd unless `port` says otherwise), with whatever headers the test picks. */
async function viaProxy(id: string, path: string, headers: Record<string, string> = {}, init: RequestInit & { port?: number } = {}) {
  const res = await fetch(`${cp.sandboxUrl}${path}`, {
    ...init,
    headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': String(init.port ?? 49983), ...headers },
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: await res.text() };
}

/** A request routed by Host `<port>-<id>.<domain>` alone (no E2b-* headers), as a browser would send it. */
function viaHost(host: string, path: string): Promise<{ status: number; body: string }> {
  const proxy = new URL(cp.sandboxUrl);
  return new Promise((resolve, reject) => {
    http
      .get({ host: proxy.hostname, port: proxy.port, path, headers: { host } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

/** envd's file signature, computed here so a test can make one that has already expired. */
function signature(path: string, operation: 'read' | 'write', user: string, token: string, expiration: number): string {
  return `v1_${createHash('sha256').update(`${path}:${operation}:${user}:${token}:${expiration}`).digest('base64').replace(/=+$/, '')}`;
}

beforeAll(async () => {
  cp = await startControlPlane({ templates: { base: manifest } });
  Object.assign(process.env, cp.env);
  delete process.env.E2B_DEBUG;
  // Two sandboxes at once: each starts in its own namespaces on its own overlay.
  [a, b] = await Promise.all([
    Sandbox.create({ metadata: { suite: 'js', run, name: 'a' }, envs: { FROM_CREATE: 'a-env' } }),
    Sandbox.create('base', { metadata: { suite: 'js', run, name: 'b' }, secure: true, timeoutMs: 120_000 }),
  ]);
}, 120_000);

afterAll(async () => {
  await cp?.close();
});

describe('the control plane through the JS SDK', () => {
  it('hands out a different token for each sandbox, and /init set it in the sandbox', () => {
    expect(a.sandboxId).not.toBe(b.sandboxId);
    const tokens = [cp.sandbox(a.sandboxId)!.accessToken, cp.sandbox(b.sandboxId)!.accessToken];
    expect(new Set(tokens).size).toBe(2);
    expect(cp.sandbox(a.sandboxId)!.envdVersion).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('reports info and lists sandboxes by metadata', async () => {
    const info = await Sandbox.getInfo(a.sandboxId);
    expect(info).toMatchObject({ sandboxId: a.sandboxId, templateId: 'base', state: 'running', metadata: { suite: 'js', run, name: 'a' } });
    const page = await Sandbox.list({ query: { metadata: { run, name: 'b' } } }).nextItems();
    expect(page.map((s) => s.sandboxId)).toEqual([b.sandboxId]);
    const both = await Sandbox.list({ query: { metadata: { run }, state: ['running'] } }).nextItems();
    expect(both.map((s) => s.sandboxId).sort()).toEqual([a.sandboxId, b.sandboxId].sort());
  });

  it('moves the end of a sandbox with setTimeout', async () => {
    await b.setTimeout(600_000);
    const info = await b.getInfo();
    expect(info.endAt.getTime() - Date.now()).toBeGreaterThan(500_000);
  });

  it('refuses a wrong API key', async () => {
    await expect(Sandbox.list({ apiKey: 'e2b_wrong' }).nextItems()).rejects.toBeInstanceOf(AuthenticationError);
  });
});

describe('envd through the proxy with the token', () => {
  it('runs commands as the /init default user with the create envs', async () => {
    const r = await a.commands.run('echo "$(id -un) $FROM_CREATE $(pwd)"');
    expect(r.stdout).toBe('user a-env /home/user\n');
  });

  it('round-trips files, and one sandbox does not see another one’s files', async () => {
    const blob = randomBytes(2 * 1024 * 1024 + 5);
    await a.files.write('/home/user/only-in-a.bin', new Blob([blob]));
    const back = Buffer.from(await a.files.read('/home/user/only-in-a.bin', { format: 'bytes' }));
    expect(back.equals(blob)).toBe(true);
    expect(await b.files.exists('/home/user/only-in-a.bin')).toBe(false);
  });

  it('opens a PTY', async () => {
    let out = '';
    const dec = new TextDecoder();
    const pty = await a.pty.create({ cols: 80, rows: 24, onData: (d) => void (out += dec.decode(d, { stream: true })) });
    await a.pty.sendInput(pty.pid, new TextEncoder().encode('echo "pty-$((6*7))-$(id -un)"; exit\n'));
    expect((await pty.wait()).exitCode).toBe(0);
    expect(out).toContain('pty-42-user');
  });

  it('watches a directory', async () => {
    await a.files.makeDir('/home/user/watched');
    let seen!: (type: string) => void;
    const reported = new Promise<string>((resolve) => (seen = resolve));
    // watchDir resolves once the watch is in place, so the write after it must be reported.
    const watcher = await a.files.watchDir('/home/user/watched', (e) => {
      if (e.name === 'new.txt') seen(e.type);
    });
    await a.files.write('/home/user/watched/new.txt', 'x');
    expect(['create', 'write']).toContain(await reported);
    await watcher.stop();
  });

  it('serves signed download and upload URLs to a client with no token', async () => {
    await b.files.write('/home/user/signed.txt', 'signed content');
    const down = new URL(await b.downloadUrl('/home/user/signed.txt'));
    expect(down.searchParams.get('signature')).toMatch(/^v1_/);
    expect(await viaProxy(b.sandboxId, `${down.pathname}${down.search}`)).toEqual({ status: 200, body: 'signed content' });
    // The same URL routed by Host alone, as from a browser.
    expect(await viaHost(`49983-${b.sandboxId}.${cp.domain}`, `${down.pathname}${down.search}`)).toEqual({ status: 200, body: 'signed content' });

    const up = new URL(await b.uploadUrl('/home/user/uploaded.txt', { useSignatureExpiration: 600 }));
    expect(up.searchParams.get('signature_expiration')).toMatch(/^\d+$/);
    const form = new FormData();
    form.append('file', new Blob(['from a signed upload']), 'uploaded.txt');
    const posted = await viaProxy(b.sandboxId, `${up.pathname}${up.search}`, {}, { method: 'POST', body: form });
    expect(posted.status).toBe(200);
    expect(await b.files.read('/home/user/uploaded.txt')).toBe('from a signed upload');
  });
});

describe('refusals', () => {
  it('refuses a request without the token, with a wrong one and with another sandbox’s', async () => {
    const tokenB = cp.sandbox(b.sandboxId)!.accessToken;
    expect((await viaProxy(a.sandboxId, '/envs')).status).toBe(401);
    expect((await viaProxy(a.sandboxId, '/envs', { 'X-Access-Token': 'wrong' })).status).toBe(401);
    expect((await viaProxy(a.sandboxId, '/envs', { 'X-Access-Token': tokenB })).status).toBe(401);
    expect((await viaProxy(b.sandboxId, '/envs', { 'X-Access-Token': tokenB })).status).toBe(200);
    const rpc = await viaProxy(a.sandboxId, '/filesystem.Filesystem/Stat', { 'X-Access-Token': tokenB, 'content-type': 'application/json' }, { method: 'POST', body: JSON.stringify({ path: '/' }) });
    expect(rpc.status).toBe(401);
    expect(JSON.parse(rpc.body)).toMatchObject({ code: 401, message: expect.stringContaining('access token') });
  });

  it('fails SDK calls made with another sandbox’s token', async () => {
    const impostor = new Sandbox({ sandboxId: a.sandboxId, envdVersion: cp.sandbox(a.sandboxId)!.envdVersion, envdAccessToken: cp.sandbox(b.sandboxId)!.accessToken });
    await expect(impostor.commands.run('id')).rejects.toThrow(/unauthenticated|401|token/i);
    await expect(impostor.files.read('/etc/hostname')).rejects.toThrow();
  });

  it('refuses a signed URL that has expired, is for another path, or is signed with another token', async () => {
    const tokenB = cp.sandbox(b.sandboxId)!.accessToken;
    const past = Math.floor(Date.now() / 1000) - 10;
    const future = past + 3600;
    const q = (path: string, sig: string, exp: number) => `/files?path=${encodeURIComponent(path)}&signature=${encodeURIComponent(sig)}&signature_expiration=${exp}`;
    expect((await viaProxy(b.sandboxId, q('/home/user/signed.txt', signature('/home/user/signed.txt', 'read', '', tokenB, past), past))).status).toBe(401);
    expect((await viaProxy(b.sandboxId, q('/home/user/signed.txt', signature('/home/user/signed.txt', 'read', '', tokenB, future), future))).status).toBe(200);
    expect((await viaProxy(b.sandboxId, q('/etc/hostname', signature('/home/user/signed.txt', 'read', '', tokenB, future), future))).status).toBe(401);
    const tokenA = cp.sandbox(a.sandboxId)!.accessToken;
    expect((await viaProxy(b.sandboxId, q('/home/user/signed.txt', signature('/home/user/signed.txt', 'read', '', tokenA, future), future))).status).toBe(401);
  });

  it('asks a client of the gateway (port 5600, beyond loopback) for the envd token', async () => {
    const token = cp.sandbox(a.sandboxId)!.accessToken;
    expect((await viaProxy(a.sandboxId, '/health', {}, { port: 5600 })).status).toBe(200);
    expect((await viaProxy(a.sandboxId, '/mcps', {}, { port: 5600 })).status).toBe(401);
    expect((await viaProxy(a.sandboxId, '/mcps', { 'X-Access-Token': cp.sandbox(b.sandboxId)!.accessToken }, { port: 5600 })).status).toBe(401);
    expect(await viaProxy(a.sandboxId, '/mcps', { 'X-Access-Token': token }, { port: 5600 })).toEqual({ status: 200, body: '[]' });
    // Inside the sandbox, on loopback, no token is needed (AgentScope's shim sends none).
    // The image has no HTTP client, so bash speaks HTTP/1.0 over /dev/tcp.
    const inside = await a.commands.run(`bash -c 'exec 3<>/dev/tcp/127.0.0.1/5600; printf "GET /mcps HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n" >&3; cat <&3'`);
    expect(inside.stdout).toMatch(/^HTTP\/1\.1 200 /);
    expect(inside.stdout.endsWith('\r\n\r\n[]')).toBe(true);
  });

  it('refuses an /init replay with another token, and the sandbox keeps its own', async () => {
    const replay = await viaProxy(a.sandboxId, '/init', { 'content-type': 'application/json' }, { method: 'POST', body: JSON.stringify({ accessToken: 'attacker' }) });
    expect(replay.status).toBe(401);
    expect((await a.commands.run('echo still-mine')).stdout).toBe('still-mine\n');
  });

  it('answers an unknown sandbox, a closed port or no routing at all from the proxy, leaving the daemon serving', async () => {
    const unknown = await viaProxy('nosuchsandbox0000000', '/health');
    expect(unknown.status).toBe(502);
    expect(JSON.parse(unknown.body).message).toContain("'nosuchsandbox0000000' was not found");
    const closed = await viaProxy(a.sandboxId, '/', {}, { port: 1234 });
    expect(closed.status).toBe(502);
    expect(JSON.parse(closed.body).message).toContain('nothing listens on port 1234');
    const bare = await fetch(`${cp.sandboxUrl}/health`);
    expect(bare.status).toBe(400);
    expect((await viaHost(`49983-nosuchsandbox0000000.${cp.domain}`, '/health')).status).toBe(502);
    expect(await viaProxy(a.sandboxId, '/health')).toEqual({ status: 204, body: '' });
    expect(await a.isRunning()).toBe(true);
  });
});

describe('lifecycle', () => {
  it('pauses a sandbox (its processes stop) and connect resumes it where it was', async () => {
    const sleeper = await b.commands.run('sleep 600', { background: true });
    expect(await b.pause()).toBe(true);
    expect((await Sandbox.getInfo(b.sandboxId)).state).toBe('paused');
    expect(await b.isRunning()).toBe(false);
    expect(await b.pause()).toBe(false);
    const again = await Sandbox.connect(b.sandboxId);
    expect((await Sandbox.getInfo(b.sandboxId)).state).toBe('running');
    const ps = await again.commands.list();
    expect(ps.map((p) => p.pid)).toContain(sleeper.pid);
    expect(await again.files.read('/home/user/signed.txt')).toBe('signed content');
  });

  it('kills a sandbox whose timeout has passed', async () => {
    const brief = await Sandbox.create({ metadata: { run, name: 'brief' }, timeoutMs: 1_000 });
    const local = cp.sandbox(brief.sandboxId)!;
    expect(await local.running.exited).toEqual({ code: 0, signal: null });
    await expect(Sandbox.getInfo(brief.sandboxId)).rejects.toBeInstanceOf(SandboxNotFoundError);
  });

  it('kills a sandbox: gone from the list, the proxy reports it missing', async () => {
    expect(await Sandbox.kill(a.sandboxId)).toBe(true);
    expect(await Sandbox.kill(a.sandboxId)).toBe(false);
    await expect(Sandbox.getInfo(a.sandboxId)).rejects.toBeInstanceOf(SandboxNotFoundError);
    expect(await a.isRunning()).toBe(false);
    const left = await Sandbox.list({ query: { metadata: { run } } }).nextItems();
    expect(left.map((s) => s.sandboxId)).toEqual([b.sandboxId]);
  });
});
