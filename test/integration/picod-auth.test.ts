import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startDaemon } from '../helpers/daemon.js';
import { hmacWithPublicKey, routerClaims, routerKeys, signToken, startPicodDaemon, unsignedToken, type PicodDaemon } from './picod-support.js';

const echo = JSON.stringify({ command: ['echo', 'hello'] });

describe('PicoD face: health and the router token', () => {
  let p: PicodDaemon;
  beforeAll(async () => {
    p = await startPicodDaemon();
  });
  afterAll(async () => {
    await p?.daemon.stop();
  });

  const execute = (headers: Record<string, string>) =>
    fetch(`${p.url}/api/execute`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: echo });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('answers /health without a token, as PicoD', async () => {
    const res = await fetch(`${p.url}/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: 'ok', service: 'PicoD', version: '0.0.1' });
    expect(body.uptime).toMatch(/^[\d.]+(ns|µs|ms|s)$|^[\dhm.]+s$/);
  });

  it('runs a command for a token the router signed', async () => {
    const res = await execute(p.auth());
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ stdout: 'hello\n', exit_code: 0 });
  });

  it('takes RS384 and RS512 tokens too', async () => {
    for (const alg of ['RS384', 'RS512'] as const) {
      expect((await execute(bearer(signToken(p.privateKey, routerClaims(), alg)))).status).toBe(200);
    }
  });

  it('refuses a request without Authorization with 401 and PicoD error fields', async () => {
    const res = await execute({});
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'Missing Authorization header', code: 401, detail: 'Request requires JWT authentication' });
  });

  it('refuses an Authorization header that is not "Bearer <token>"', async () => {
    for (const header of ['Basic dXNlcjo=', 'Bearer', `bearer ${signToken(p.privateKey)}`, `Bearer  ${signToken(p.privateKey)}`]) {
      const res = await execute({ authorization: header });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'Invalid Authorization header format', code: 401, detail: 'Use Bearer <token>' });
    }
  });

  it('refuses malformed tokens', async () => {
    for (const token of ['abc', 'a.b', 'a.b.c.d', '!!!.???.###', 'eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.AAAA']) {
      const res = await execute(bearer(token));
      expect(res.status).toBe(401);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ error: 'Invalid token', code: 401 });
      expect(body.detail).toMatch(/^JWT verification failed: token is malformed/);
    }
  });

  it('refuses an expired token, but allows a minute of clock skew', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await execute(bearer(signToken(p.privateKey, routerClaims({ iat: now - 600, exp: now - 120 }))));
    expect(expired.status).toBe(401);
    expect(((await expired.json()) as { detail: string }).detail).toContain('token is expired');
    const withinLeeway = await execute(bearer(signToken(p.privateKey, routerClaims({ iat: now - 600, exp: now - 30 }))));
    expect(withinLeeway.status).toBe(200);
  });

  it('requires exp and refuses a token issued in the future', async () => {
    const now = Math.floor(Date.now() / 1000);
    const noExp = await execute(bearer(signToken(p.privateKey, { iat: now, iss: 'agentcube-router' })));
    expect(noExp.status).toBe(401);
    expect(((await noExp.json()) as { detail: string }).detail).toContain('exp claim is required');
    const future = await execute(bearer(signToken(p.privateKey, routerClaims({ iat: now + 300, exp: now + 600 }))));
    expect(future.status).toBe(401);
    expect(((await future.json()) as { detail: string }).detail).toContain('token used before issued');
  });

  it('refuses a token signed by another key', async () => {
    const other = routerKeys();
    const res = await execute(bearer(signToken(other.privateKey)));
    expect(res.status).toBe(401);
    expect(((await res.json()) as { detail: string }).detail).toContain('token signature is invalid');
  });

  it('refuses alg none', async () => {
    const res = await execute(bearer(unsignedToken()));
    expect(res.status).toBe(401);
    expect(((await res.json()) as { detail: string }).detail).toContain('unexpected signing method: none');
  });

  it('refuses HS256 signed with the public key as the secret', async () => {
    const res = await execute(bearer(hmacWithPublicKey(p.publicPem)));
    expect(res.status).toBe(401);
    expect(((await res.json()) as { detail: string }).detail).toContain('unexpected signing method: HS256');
  });

  it('guards the file routes as well', async () => {
    expect((await fetch(`${p.url}/api/files?path=.`)).status).toBe(401);
    expect((await fetch(`${p.url}/api/files/x.txt`)).status).toBe(401);
    expect((await fetch(`${p.url}/api/files`, { method: 'POST', body: '{}' })).status).toBe(401);
  });

  it('answers unknown paths 404 without asking for a token, as gin does', async () => {
    const res = await fetch(`${p.url}/api/nothing`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('404 page not found');
  });

  it('refuses a declared body over 32 MiB with 413 before checking the token', async () => {
    const body = Buffer.alloc(32 * 1024 * 1024 + 1, 0x20);
    const res = await fetch(`${p.url}/api/execute`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: 'request body too large', detail: 'maximum allowed size is 33554432 bytes' });
  });
});

describe('PicoD face without a usable key', () => {
  it('does not start without PICOD_AUTH_PUBLIC_KEY, says why, and envd keeps serving', async () => {
    const port = await freePort();
    const d = await startDaemon({ args: ['--picod-port', String(port)], env: { PICOD_AUTH_PUBLIC_KEY: '' } });
    try {
      const rec = await d.waitFor((r) => typeof r.msg === 'string' && r.msg.startsWith('picod face not started'), 'picod refusal');
      expect(rec.msg).toContain('PICOD_AUTH_PUBLIC_KEY is not set');
      expect((await fetch(`${d.url}/health`)).status).toBe(204);
      await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
    } finally {
      await d.stop();
    }
  });

  it('does not start with a PEM that holds no RSA public key', async () => {
    const port = await freePort();
    const d = await startDaemon({ args: ['--picod-port', String(port)], env: { PICOD_AUTH_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n' } });
    try {
      const rec = await d.waitFor((r) => typeof r.msg === 'string' && r.msg.startsWith('picod face not started'), 'picod refusal');
      expect(rec.msg).toContain('failed to parse public key');
      expect((await fetch(`${d.url}/health`)).status).toBe(204);
    } finally {
      await d.stop();
    }
  });

  it('serves PicoD on --picod-port from SANDBOXD_PICOD_PORT, and 8080 is only the default when the key is set', async () => {
    const port = await freePort();
    const { publicPem } = routerKeys();
    const d = await startDaemon({ env: { PICOD_AUTH_PUBLIC_KEY: publicPem, SANDBOXD_PICOD_PORT: String(port) } });
    try {
      const rec = await d.waitFor((r) => r.msg === 'picod face listening', 'picod face listening');
      expect(rec.port).toBe(port);
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    } finally {
      await d.stop();
    }
  });
});
