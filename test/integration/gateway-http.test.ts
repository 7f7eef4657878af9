import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { GatewayApi, httpSpec, startEverythingHttp, startRecordingProxy, type HttpUpstream } from './gateway-support.js';

type Chunk = { chunk: { state: string; content: { type: string; text?: string; source?: { media_type: string } }[] } };
const texts = (body: unknown) => (body as Chunk).chunk.content.map((b) => b.text);

describe('gateway with HTTP upstreams', () => {
  let d: RunningDaemon;
  let api: GatewayApi;
  let streamable: HttpUpstream;
  let sse: HttpUpstream;

  beforeAll(async () => {
    [d, streamable, sse] = await Promise.all([startDaemon({ gatewayPort: 'free' }), startEverythingHttp('streamableHttp'), startEverythingHttp('sse')]);
    api = new GatewayApi(d.gatewayUrl);
  });
  afterAll(async () => {
    await Promise.all([d?.stop(), streamable?.stop(), sse?.stop()]);
  });

  it('serves a stateful streamable HTTP upstream, sending its headers on every request', async () => {
    const proxy = await startRecordingProxy(streamable.port);
    try {
      const spec = httpSpec('web', `${proxy.url}/mcp`, {}, { headers: { 'X-Api-Key': 'k-123' } });
      expect(await api.post('/mcps', spec)).toMatchObject({ status: 200, body: { ok: true } });
      expect((await api.get('/mcps')).body).toEqual([spec]);
      const tools = (await api.get('/mcps/web/tools')).body as { name: string }[];
      expect(tools.map((t) => t.name)).toContain('echo');
      const echo = await api.post('/mcps/web/tools/echo', { arguments: { message: 'over http' } });
      expect(texts(echo.body)).toEqual(['Echo: over http']);
      const image = await api.post('/mcps/web/tools/get-tiny-image', { arguments: {} });
      expect((image.body as Chunk).chunk.content[1]).toMatchObject({ type: 'data', source: { type: 'base64', media_type: 'image/png' } });

      const posts = proxy.seen.filter((r) => r.method === 'POST');
      expect(posts.flatMap((r) => r.rpc).filter((m) => m === 'initialize')).toHaveLength(1);
      for (const r of proxy.seen) expect(r.headers['x-api-key'], `${r.method} ${r.url}`).toBe('k-123');

      expect((await api.delete('/mcps/web')).status).toBe(200);
      // The session is ended on the server, not just forgotten.
      expect(proxy.seen.some((r) => r.method === 'DELETE')).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('cancels the upstream call (notifications/cancelled) when the REST client goes away', async () => {
    const proxy = await startRecordingProxy(streamable.port);
    try {
      expect((await api.post('/mcps', httpSpec('slow', `${proxy.url}/mcp`))).status).toBe(200);
      const host = new AbortController();
      const call = fetch(api.url('/mcps/slow/tools/trigger-long-running-operation'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ arguments: { duration: 60, steps: 60 } }),
        signal: host.signal,
      });
      await expect.poll(() => proxy.seen.flatMap((r) => r.rpc)).toContain('tools/call');
      host.abort();
      await expect(call).rejects.toThrow();
      await expect.poll(() => proxy.seen.flatMap((r) => r.rpc)).toContain('notifications/cancelled');
      // The server is still there for the next call.
      expect(texts((await api.post('/mcps/slow/tools/echo', { arguments: { message: 'after' } })).body)).toEqual(['Echo: after']);
      expect((await api.delete('/mcps/slow')).status).toBe(200);
    } finally {
      await proxy.close();
    }
  });

  it('opens a session per call for an is_stateful: false upstream', async () => {
    const proxy = await startRecordingProxy(streamable.port);
    try {
      expect((await api.post('/mcps', httpSpec('once', `${proxy.url}/mcp`, { is_stateful: false }))).status).toBe(200);
      const initsAfterRegister = proxy.seen.flatMap((r) => r.rpc).filter((m) => m === 'initialize').length;
      for (const word of ['one', 'two']) {
        expect(texts((await api.post('/mcps/once/tools/echo', { arguments: { message: word } })).body)).toEqual([`Echo: ${word}`]);
      }
      const inits = proxy.seen.flatMap((r) => r.rpc).filter((m) => m === 'initialize').length;
      expect(inits - initsAfterRegister).toBe(2);
      expect(proxy.seen.filter((r) => r.method === 'DELETE').length).toBeGreaterThanOrEqual(inits);
      expect((await api.delete('/mcps/once')).status).toBe(200);
    } finally {
      await proxy.close();
    }
  });

  it('sends runtime headers from the registration and from PUT runtime-headers, never listing them', async () => {
    const proxy = await startRecordingProxy(streamable.port);
    try {
      const spec = httpSpec('rot', `${proxy.url}/mcp`, {}, { headers: { Authorization: 'Bearer static', 'X-Tenant': 't1' } });
      expect((await api.post('/mcps', { ...spec, runtime_headers: { Authorization: 'Bearer first' } })).status).toBe(200);
      expect((await api.get('/mcps')).body).toEqual([spec]);
      expect(proxy.seen.every((r) => r.headers.authorization === 'Bearer first' && r.headers['x-tenant'] === 't1')).toBe(true);

      const put = await api.request('PUT', '/mcps/rot/runtime-headers', { headers: { Authorization: 'Bearer second' } });
      expect(put.status).toBe(204);
      const before = proxy.seen.length;
      expect((await api.post('/mcps/rot/tools/echo', { arguments: { message: 'rotated' } })).status).toBe(200);
      const later = proxy.seen.slice(before).filter((r) => r.method === 'POST');
      expect(later.length).toBeGreaterThan(0);
      for (const r of later) expect(r.headers.authorization).toBe('Bearer second');

      expect((await api.request('PUT', '/mcps/rot/runtime-headers', { headers: {} })).status).toBe(204);
      const cleared = proxy.seen.length;
      await api.post('/mcps/rot/tools/echo', { arguments: { message: 'static again' } });
      for (const r of proxy.seen.slice(cleared)) expect(r.headers.authorization).toBe('Bearer static');

      expect(await api.request('PUT', '/mcps/rot/runtime-headers', { headers: { Host: 'evil' } })).toMatchObject({
        status: 400,
        body: { detail: "Runtime header 'Host' is owned by the HTTP layer." },
      });
      expect(await api.request('PUT', '/mcps/rot/runtime-headers', { headers: 'x' })).toMatchObject({ status: 400, body: { detail: 'headers must be a JSON object' } });
      expect((await api.request('PUT', '/mcps/ghost/runtime-headers', { headers: {} })).status).toBe(404);
      expect((await api.delete('/mcps/rot')).status).toBe(200);
    } finally {
      await proxy.close();
    }
  });

  it('serves an SSE upstream when the URL path ends in /sse', async () => {
    expect((await api.post('/mcps', httpSpec('events', `http://127.0.0.1:${sse.port}/sse`))).status).toBe(200);
    expect(texts((await api.post('/mcps/events/tools/echo', { arguments: { message: 'over sse' } })).body)).toEqual(['Echo: over sse']);
    expect(texts((await api.post('/mcps/events/tools/get-sum', { arguments: { a: 1, b: 2 } })).body)).toEqual(['The sum of 1 and 2 is 3.']);
    const put = await api.request('PUT', '/mcps/events/runtime-headers', { headers: { 'X-A': 'b' } });
    expect(put).toMatchObject({ status: 400, body: { detail: 'Runtime headers require a Streamable HTTP MCP client.' } });
    expect((await api.delete('/mcps/events')).status).toBe(200);
  });

  it('honours the timeout of an upstream that accepts connections but never answers', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const res = await api.post('/mcps', httpSpec('mute', `http://127.0.0.1:${port}/mcp`, {}, { timeout: 0.3 }));
      expect(res.status).toBe(500);
      expect((res.body as { detail: string }).detail).toMatch(/^connect failed: .*within 300 ms/);
    } finally {
      silent.close();
    }
  });

  it('answers connect failed for an upstream that is not listening', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const res = await api.post('/mcps', httpSpec('gone', `http://127.0.0.1:${port}/mcp`));
    expect(res.status).toBe(500);
    expect((res.body as { detail: string }).detail).toMatch(/^connect failed: .*ECONNREFUSED/);
    expect((await api.get('/mcps')).body).toEqual([]);
  });
});
