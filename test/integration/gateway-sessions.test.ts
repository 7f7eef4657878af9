import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
  type LoggingMessageNotification,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { GatewayApi, httpSpec, startEverythingHttp, startRecordingProxy, stdioSpec, type HttpUpstream } from './gateway-support.js';

const PROTOCOL = '2025-11-25';
const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

const textOf = (r: unknown) => (r as { content: { type: string; text?: string }[] }).content.map((b) => b.text);

/** One SSE event as the gateway writes it. */
interface SseEvent {
  id?: string;
  data: string;
}

function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data:'))
    .map((block) => {
      const lines = block.split('\n');
      const id = lines.find((l) => l.startsWith('id:'))?.slice(3).trim();
      const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
      return { id, data };
    })
    .filter((e) => e.data !== '');
}

describe('gateway MCP sessions', () => {
  let d: RunningDaemon;
  let upstream: HttpUpstream;
  const marker = `sbx-gw-sess-${randomUUID()}`;
  const pair = { agent_id: 'agent-s', session_id: 'sess-s' };
  const query = `agent_id=${pair.agent_id}&session_id=${pair.session_id}`;
  let api: GatewayApi;
  const clients: Client[] = [];

  async function connect(path = `/mcp?${query}`): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const client = new Client({ name: 'session-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${d.gatewayUrl}${path}`));
    await client.connect(transport);
    clients.push(client);
    return { client, transport };
  }

  /** Opens a session by hand: initialize, then the initialized notification. */
  async function rawSession(path = `/mcp?${query}`, base = d.gatewayUrl): Promise<string> {
    const res = await fetch(`${base}${path}`, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) });
    expect(res.status).toBe(200);
    const id = res.headers.get('mcp-session-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await res.text();
    const note = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { ...MCP_HEADERS, 'mcp-session-id': id!, 'mcp-protocol-version': PROTOCOL },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    expect(note.status).toBe(202);
    return id!;
  }

  const streamOpened = (id: string, n = 1) => expect.poll(() => d.logs.filter((l) => l.msg === 'mcp session stream opened' && l.mcpSession === id).length).toBeGreaterThanOrEqual(n);

  beforeAll(async () => {
    [d, upstream] = await Promise.all([startDaemon({ gatewayPort: 'free' }), startEverythingHttp('streamableHttp')]);
    api = new GatewayApi(d.gatewayUrl, pair);
    expect((await api.post('/mcps', stdioSpec('ev', marker))).status).toBe(200);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await Promise.all([d?.stop(), upstream?.stop()]);
  });

  it('keeps one session, opened by one initialize, across many calls', async () => {
    const { client, transport } = await connect();
    const id = transport.sessionId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    for (let i = 0; i < 30; i++) expect(textOf(await client.callTool({ name: 'ev__echo', arguments: { message: `n${i}` } }))).toEqual([`Echo: n${i}`]);
    expect(transport.sessionId).toBe(id);
    expect(d.logs.filter((l) => l.msg === 'mcp session opened' && l.mcpSession === id)).toHaveLength(1);
  });

  it('tells every session of the pair that the tool list changed when a registration comes and goes', async () => {
    const [a, b] = await Promise.all([connect(), connect()]);
    const seen = [0, 0];
    a.client.setNotificationHandler(ToolListChangedNotificationSchema, () => void seen[0]!++);
    b.client.setNotificationHandler(ToolListChangedNotificationSchema, () => void seen[1]!++);
    const other = await connect(`/mcp?agent_id=agent-s&session_id=someone-else`);
    let otherSeen = 0;
    other.client.setNotificationHandler(ToolListChangedNotificationSchema, () => void otherSeen++);
    await Promise.all([streamOpened(a.transport.sessionId!), streamOpened(b.transport.sessionId!), streamOpened(other.transport.sessionId!)]);

    expect((await api.post('/mcps', stdioSpec('added', marker))).status).toBe(200);
    await expect.poll(() => seen).toEqual([1, 1]);
    expect((await a.client.listTools()).tools.map((t) => t.name)).toContain('added__echo');
    expect((await api.delete('/mcps/added')).status).toBe(200);
    await expect.poll(() => seen).toEqual([2, 2]);
    expect(otherSeen).toBe(0);
  });

  it('forwards the upstream’s progress to the caller during trigger-long-running-operation', async () => {
    const { client } = await connect();
    const progress: Progress[] = [];
    const result = await client.callTool({ name: 'ev__trigger-long-running-operation', arguments: { duration: 0.5, steps: 5 } }, undefined, {
      onprogress: (p) => progress.push(p),
    });
    expect(textOf(result)[0]).toMatch(/^Long running operation completed/);
    expect(progress.map((p) => [p.progress, p.total])).toEqual([
      [1, 5],
      [2, 5],
      [3, 5],
      [4, 5],
      [5, 5],
    ]);
  });

  it('forwards upstream logging to the sessions of the pair', async () => {
    const { client, transport } = await connect();
    const logs: LoggingMessageNotification['params'][] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
    await streamOpened(transport.sessionId!);
    // server-everything logs once at once, then every 5 s, while simulated logging is on.
    await client.callTool({ name: 'ev__toggle-simulated-logging', arguments: {} });
    try {
      await expect.poll(() => logs.length).toBeGreaterThan(0);
      expect(logs[0]).toMatchObject({ logger: 'ev', data: expect.stringMatching(/message/) });
    } finally {
      await client.callTool({ name: 'ev__toggle-simulated-logging', arguments: {} });
    }
  });

  it('cancels the call upstream when the client cancels it', async () => {
    const proxy = await startRecordingProxy(upstream.port);
    try {
      expect((await api.post('/mcps', httpSpec('web', `${proxy.url}/mcp`))).status).toBe(200);
      const { client } = await connect();
      const cancel = new AbortController();
      const call = client.callTool({ name: 'web__trigger-long-running-operation', arguments: { duration: 60, steps: 60 } }, undefined, { signal: cancel.signal });
      await expect.poll(() => proxy.seen.flatMap((r) => r.rpc)).toContain('tools/call');
      cancel.abort('changed my mind');
      await expect(call).rejects.toThrow();
      await expect.poll(() => proxy.seen.flatMap((r) => r.rpc)).toContain('notifications/cancelled');
      expect(textOf(await client.callTool({ name: 'web__echo', arguments: { message: 'still fine' } }))).toEqual(['Echo: still fine']);
    } finally {
      await api.delete('/mcps/web');
      await proxy.close();
    }
  });

  it('replays the events a resumed GET missed (Last-Event-ID)', async () => {
    const id = await rawSession();
    const headers = { accept: 'text/event-stream', 'mcp-session-id': id, 'mcp-protocol-version': PROTOCOL };
    const url = `${d.gatewayUrl}/mcp?${query}`;
    // First stream: see one event, note its id, hang up.
    const first = new AbortController();
    const res = await fetch(url, { headers, signal: first.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    expect((await api.post('/mcps', stdioSpec('r1', marker))).status).toBe(200);
    let text = '';
    while (!parseSse(text).some((e) => e.id)) text += new TextDecoder().decode((await reader.read()).value);
    const lastId = parseSse(text).find((e) => e.id)!.id!;
    first.abort();
    await expect.poll(() => d.logs.filter((l) => l.msg === 'mcp session closed' && l.mcpSession === id).length).toBe(0);

    // While nobody listens: r1 goes, r2 comes.
    expect((await api.delete('/mcps/r1')).status).toBe(200);
    expect((await api.post('/mcps', stdioSpec('r2', marker))).status).toBe(200);
    const resumed = new AbortController();
    const again = await fetch(url, { headers: { ...headers, 'last-event-id': lastId }, signal: resumed.signal });
    expect(again.status).toBe(200);
    const r2 = again.body!.getReader();
    let replay = '';
    // Each registry change is three list_changed notifications (tools, resources, prompts); the first
    // change's other two plus both later changes' six are the eight after lastId.
    while (parseSse(replay).length < 8) replay += new TextDecoder().decode((await r2.read()).value);
    resumed.abort();
    const methods = parseSse(replay).map((e) => (JSON.parse(e.data) as { method: string }).method);
    expect(methods.filter((m) => m === 'notifications/tools/list_changed')).toHaveLength(2);
    expect(methods).toHaveLength(8);
    await api.delete('/mcps/r2');
  });

  it('ends an idle session; its id then answers 404', async () => {
    const quick = await startDaemon({ gatewayPort: 'free', args: ['--gateway-session-idle', '1'] });
    try {
      const id = await rawSession(`/mcp?${query}`, quick.gatewayUrl);
      await expect.poll(() => quick.logs.some((l) => l.msg === 'mcp session closed' && l.mcpSession === id && l.why === 'idle'), { timeout: 10_000 }).toBe(true);
      const res = await fetch(`${quick.gatewayUrl}/mcp?${query}`, {
        method: 'POST',
        headers: { ...MCP_HEADERS, 'mcp-session-id': id, 'mcp-protocol-version': PROTOCOL },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ error: { code: -32001, message: expect.stringMatching(/^Session not found/) } });
    } finally {
      await quick.stop();
    }
  });

  it('ends a session on DELETE', async () => {
    const { transport } = await connect();
    const id = transport.sessionId!;
    await transport.terminateSession();
    await expect.poll(() => d.logs.some((l) => l.msg === 'mcp session closed' && l.mcpSession === id)).toBe(true);
    const res = await fetch(`${d.gatewayUrl}/mcp?${query}`, { headers: { accept: 'text/event-stream', 'mcp-session-id': id } });
    expect(res.status).toBe(404);
  });

  it('serves 100 concurrent sessions, each its own', async () => {
    const opened = await Promise.all(Array.from({ length: 100 }, () => connect()));
    expect(new Set(opened.map((o) => o.transport.sessionId)).size).toBe(100);
    const answers = await Promise.all(opened.map((o, i) => o.client.callTool({ name: 'ev__echo', arguments: { message: `s${i}` } })));
    expect(answers.map((a) => textOf(a)[0])).toEqual(opened.map((_, i) => `Echo: s${i}`));
    await Promise.all(opened.map((o) => o.transport.terminateSession()));
  });

  it('answers a POST without a session statelessly, for clients that keep none', async () => {
    const res = await fetch(`${d.gatewayUrl}/mcp?${query}`, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('mcp-session-id')).toBeNull();
    const body = (await res.json()) as { result: { tools: { name: string }[] } };
    expect(body.result.tools.map((t) => t.name)).toContain('ev__echo');
  });

  it('aggregates prompts and resources as {mcp}__name, with URIs that read back, and passes completions through', async () => {
    const { client } = await connect();
    const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
    expect(prompts).toContain('ev__simple-prompt');
    const prompt = await client.getPrompt({ name: 'ev__simple-prompt' });
    expect(prompt.messages[0]).toMatchObject({ role: 'user', content: { type: 'text' } });

    const resources = (await client.listResources()).resources;
    const doc = resources.find((r) => r.name.startsWith('ev__'));
    expect(doc?.uri).toMatch(/^sandboxd-mcp:\/\/ev\//);
    const read = await client.readResource({ uri: doc!.uri });
    expect(read.contents[0]!.uri).toBe(doc!.uri);

    const templates = (await client.listResourceTemplates()).resourceTemplates;
    const text = templates.find((t) => t.uriTemplate.includes('/text/'))!;
    expect(text.uriTemplate).toBe('sandboxd-mcp://ev/demo://resource/dynamic/text/{resourceId}');
    const dynamic = await client.readResource({ uri: 'sandboxd-mcp://ev/demo://resource/dynamic/text/3' });
    expect(dynamic.contents[0]).toMatchObject({ uri: 'sandboxd-mcp://ev/demo://resource/dynamic/text/3', mimeType: 'text/plain' });
    await expect(client.readResource({ uri: 'demo://resource/dynamic/text/3' })).rejects.toThrow(/Unknown resource/);

    const completion = await client.complete({ ref: { type: 'ref/prompt', name: 'ev__resource-prompt' }, argument: { name: 'resourceType', value: 'T' } });
    expect(completion.completion.values).toEqual(['Text']);
  });

  describe('bad input', () => {
    it('answers 404 for a session id the gateway never issued', async () => {
      for (const method of ['POST', 'GET', 'DELETE']) {
        const res = await fetch(`${d.gatewayUrl}/mcp?${query}`, {
          method,
          headers: { ...MCP_HEADERS, 'mcp-session-id': 'no-such-session', 'mcp-protocol-version': PROTOCOL },
          body: method === 'POST' ? JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) : undefined,
        });
        expect(res.status, method).toBe(404);
      }
    });

    it('refuses a session used with another pair or on another endpoint (403)', async () => {
      const id = await rawSession();
      const ask = (path: string) =>
        fetch(`${d.gatewayUrl}${path}`, {
          method: 'POST',
          headers: { ...MCP_HEADERS, 'mcp-session-id': id, 'mcp-protocol-version': PROTOCOL },
          body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
        });
      for (const path of ['/mcp?agent_id=agent-s&session_id=intruder', '/mcp', `/mcps/ev/mcp?${query}`]) {
        const res = await ask(path);
        expect(res.status, path).toBe(403);
        expect(await res.json()).toMatchObject({ error: { message: expect.stringMatching(/belongs to another/) } });
      }
      expect((await ask(`/mcp?${query}`)).status).toBe(200);
    });

    it('answers 413 for a body over 16 MiB, in a session or not', async () => {
      const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ev__echo', arguments: { message: 'x'.repeat(17 * 1024 * 1024) } } });
      expect((await fetch(`${d.gatewayUrl}/mcp?${query}`, { method: 'POST', headers: MCP_HEADERS, body: big })).status).toBe(413);
      const id = await rawSession();
      const res = await fetch(`${d.gatewayUrl}/mcp?${query}`, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': id }, body: big });
      expect(res.status).toBe(413);
    });

    it('cuts the stream of a client that never reads it, holding a bounded amount, and keeps serving', async () => {
      const id = await rawSession();
      // 100 echoes of 128 KiB in one batch (the most a batch may hold): ~13 MiB of answers on one SSE
      // stream that nobody reads, more than loopback's socket buffers take.
      const batch = Array.from({ length: 100 }, (_, i) => ({ jsonrpc: '2.0', id: 100 + i, method: 'tools/call', params: { name: 'ev__echo', arguments: { message: 'y'.repeat(128 * 1024) } } }));
      const body = JSON.stringify(batch);
      const sock = await new Promise<http.ClientRequest>((resolve) => {
        const req = http.request(`${d.gatewayUrl}/mcp?${query}`, {
          method: 'POST',
          headers: { ...MCP_HEADERS, 'mcp-session-id': id, 'mcp-protocol-version': PROTOCOL, 'content-length': Buffer.byteLength(body) },
        });
        req.on('response', (res) => {
          res.pause(); // never read
          resolve(req);
        });
        req.end(body);
      });
      await expect.poll(() => d.logs.some((l) => l.msg === 'mcp stream cut: the client is not reading it' && l.mcpSession === id), { timeout: 20_000 }).toBe(true);
      sock.destroy();
      expect(textOf((await (await connect()).client.callTool({ name: 'ev__echo', arguments: { message: 'alive' } })))).toEqual(['Echo: alive']);
    });
  });
});
