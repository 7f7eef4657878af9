import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { GatewayApi, httpSpec, processesWith, startEverythingHttp, stdioSpec, waitUntilGone, type HttpUpstream } from './gateway-support.js';

/** An MCP SDK client speaking Streamable HTTP to a gateway endpoint. */
async function mcpClient(url: string, headers: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: 'gateway-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  return client;
}

const textOf = (r: unknown) => (r as { content: { type: string; text?: string }[] }).content.map((b) => b.text);

describe('gateway MCP endpoints', () => {
  let d: RunningDaemon;
  let upstream: HttpUpstream;
  const marker = `sbx-gw-mcp-${randomUUID()}`;
  const pair = { agent_id: 'agent-7', session_id: 'sess-1' };
  const clients: Client[] = [];
  const connect = async (url: string, headers?: Record<string, string>) => {
    const c = await mcpClient(url, headers);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    [d, upstream] = await Promise.all([startDaemon({ gatewayPort: 'free' }), startEverythingHttp('streamableHttp')]);
    const api = new GatewayApi(d.gatewayUrl, pair);
    expect((await api.post('/mcps', stdioSpec('ev', marker, { enable_tools: ['echo', 'get-sum', 'get-tiny-image'] }))).status).toBe(200);
    expect((await api.post('/mcps', httpSpec('web', `http://127.0.0.1:${upstream.port}/mcp`, { disable_tools: ['get-env'] }))).status).toBe(200);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await Promise.all([d?.stop(), upstream?.stop()]);
  });

  it('aggregates the pair’s MCPs on /mcp as {mcp}__{tool}, with enable/disable filters applied', async () => {
    const client = await connect(`${d.gatewayUrl}/mcp?agent_id=agent-7&session_id=sess-1`);
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names.filter((n) => n.startsWith('ev__')).sort()).toEqual(['ev__echo', 'ev__get-sum', 'ev__get-tiny-image']);
    expect(names).toContain('web__echo');
    expect(names).toContain('web__trigger-long-running-operation');
    expect(names).not.toContain('web__get-env');

    expect(textOf(await client.callTool({ name: 'ev__echo', arguments: { message: 'aggregated' } }))).toEqual(['Echo: aggregated']);
    expect(textOf(await client.callTool({ name: 'web__get-sum', arguments: { a: 20, b: 22 } }))).toEqual(['The sum of 20 and 22 is 42.']);
    const image = (await client.callTool({ name: 'ev__get-tiny-image', arguments: {} })) as { content: { type: string; mimeType?: string }[] };
    expect(image.content[1]).toMatchObject({ type: 'image', mimeType: 'image/png' });

    await expect(client.callTool({ name: 'web__get-env', arguments: {} })).rejects.toThrow(/Unknown tool: web__get-env/);
    await expect(client.callTool({ name: 'nobody__echo', arguments: {} })).rejects.toThrow(/Unknown tool/);
  });

  it('shows another pair nothing on /mcp', async () => {
    const client = await connect(`${d.gatewayUrl}/mcp?agent_id=agent-7&session_id=other`);
    expect((await client.listTools()).tools).toEqual([]);
  });

  it('forwards one MCP unchanged on /mcps/{name}/mcp: server info, all tools, resources and prompts', async () => {
    const client = await connect(`${d.gatewayUrl}/mcps/ev/mcp?agent_id=agent-7&session_id=sess-1`);
    expect(client.getServerVersion()?.name).toBe('mcp-servers/everything');
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['echo', 'get-env', 'get-sum', 'trigger-long-running-operation']));
    expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'forwarded' } }))).toEqual(['Echo: forwarded']);

    const resources = (await client.listResources()).resources;
    expect(resources.length).toBeGreaterThan(0);
    const read = await client.readResource({ uri: resources[0]!.uri });
    expect(read.contents[0]?.uri).toBe(resources[0]!.uri);
    const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
    expect(prompts).toContain('simple-prompt');
    const prompt = await client.getPrompt({ name: 'simple-prompt' });
    expect(prompt.messages.length).toBeGreaterThan(0);

    const web = await connect(`${d.gatewayUrl}/mcps/web/mcp?agent_id=agent-7&session_id=sess-1`);
    expect((await web.listTools()).tools.map((t) => t.name)).toContain('get-env');
  });

  it('answers 404 for the endpoint of an unknown MCP and 400 for GET without a session', async () => {
    const res = await fetch(`${d.gatewayUrl}/mcps/ghost/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ detail: "'ghost' not found for agent='' session=''" });
    expect((await fetch(`${d.gatewayUrl}/mcp`)).status).toBe(400);
  });

  it('reports a crashed upstream as a tool error through /mcp', async () => {
    const api = new GatewayApi(d.gatewayUrl, { agent_id: 'crash' });
    const m = `${marker}-crash`;
    expect((await api.post('/mcps', stdioSpec('fragile', m))).status).toBe(200);
    const client = await connect(`${d.gatewayUrl}/mcp?agent_id=crash`);
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('fragile__echo');
    for (const pid of processesWith(m)) process.kill(pid, 'SIGKILL');
    expect(await waitUntilGone(m)).toEqual([]);
    const result = (await client.callTool({ name: 'fragile__echo', arguments: { message: 'x' } })) as { isError?: boolean };
    expect(result.isError).toBe(true);
    expect(textOf(result)[0]).toMatch(/'fragile' is not running: process \d+ was killed by SIGKILL/);
  });
});

describe('gateway MCP endpoints behind a token', () => {
  let d: RunningDaemon;
  beforeAll(async () => {
    d = await startDaemon({ gatewayPort: 'free', args: ['--gateway-token', 'mcp-secret'] });
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('lets an MCP client in only with the Bearer token', async () => {
    await expect(mcpClient(`${d.gatewayUrl}/mcp`)).rejects.toThrow(/unauthorized/);
    const client = await mcpClient(`${d.gatewayUrl}/mcp`, { Authorization: 'Bearer mcp-secret' });
    expect((await client.listTools()).tools).toEqual([]);
    await client.close();
  });
});
