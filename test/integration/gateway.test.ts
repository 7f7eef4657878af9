import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { EVERYTHING, GatewayApi, processesWith, stdioSpec, waitUntilGone } from './gateway-support.js';

const TINY_PNG_PREFIX = 'iVBORw0KGgo';

describe('gateway REST API with stdio upstreams', () => {
  let d: RunningDaemon;
  let api: GatewayApi;
  const marker = `sbx-gw-${randomUUID()}`;

  beforeAll(async () => {
    d = await startDaemon({ gatewayPort: 'free' });
    api = new GatewayApi(d.gatewayUrl);
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('answers /health with a plain ok', async () => {
    const res = await fetch(`${d.gatewayUrl}/health`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
  });

  it('registers a server, lists it as posted, lists its tools and removes it', async () => {
    const spec = stdioSpec('ev', marker);
    expect(await api.post('/mcps', spec)).toMatchObject({ status: 200, body: { ok: true } });
    expect(await api.get('/mcps')).toEqual(expect.objectContaining({ status: 200, body: [spec] }));

    const tools = await api.get('/mcps/ev/tools');
    expect(tools.status).toBe(200);
    const list = tools.body as { name: string; inputSchema: unknown; annotations?: { readOnlyHint?: boolean } }[];
    const echo = list.find((t) => t.name === 'echo');
    expect(echo?.inputSchema).toMatchObject({ type: 'object', properties: { message: { type: 'string' } }, required: ['message'] });
    expect(echo?.annotations?.readOnlyHint).toBe(true);
    expect(list.map((t) => t.name)).toEqual(expect.arrayContaining(['get-sum', 'get-tiny-image', 'trigger-long-running-operation']));

    expect(await api.delete('/mcps/ev')).toMatchObject({ status: 200, body: { ok: true } });
    expect((await api.get('/mcps')).body).toEqual([]);
    expect(await waitUntilGone(marker)).toEqual([]);
  });

  it('lists only the tools enable_tools and disable_tools let through, yet calls a filtered one by name', async () => {
    const spec = stdioSpec('picky', marker, { enable_tools: ['echo', 'get-tiny-image'], disable_tools: ['get-env'] });
    expect((await api.post('/mcps', spec)).status).toBe(200);
    try {
      expect(((await api.get('/mcps/picky/tools')).body as { name: string }[]).map((t) => t.name).sort()).toEqual(['echo', 'get-tiny-image']);
      // AgentScope's get_tool resolves from the unfiltered cache, so its gateway calls it too.
      const sum = await api.post('/mcps/picky/tools/get-sum', { arguments: { a: 1, b: 2 } });
      expect((sum.body as { chunk: { content: { text: string }[] } }).chunk.content[0]!.text).toBe('The sum of 1 and 2 is 3.');
    } finally {
      await api.delete('/mcps/picky');
    }
  });

  it('answers each host in its own release’s chunks: resource links are dropped for 2.0.10 and become url data blocks for 2.0.11', async () => {
    // AgentScope 2.0.11's MCPClient.model_dump() carries stream_progress; 2.0.10's does not.
    expect((await api.post('/mcps', stdioSpec('as210', marker))).status).toBe(200);
    expect((await api.post('/mcps', stdioSpec('as211', marker, { stream_progress: false }))).status).toBe(200);
    try {
      type Blocks = { chunk: { content: { type: string; source?: Record<string, string> }[] } };
      const old = (await api.post('/mcps/as210/tools/get-resource-links', { arguments: { count: 2 } })).body as Blocks;
      expect(old.chunk.content.map((b) => b.type)).toEqual(['text']);
      const now = (await api.post('/mcps/as211/tools/get-resource-links', { arguments: { count: 2 } })).body as Blocks;
      expect(now.chunk.content.map((b) => b.type)).toEqual(['text', 'data', 'data']);
      expect(now.chunk.content[2]!.source).toEqual({ type: 'url', url: 'demo://resource/dynamic/text/2', media_type: 'text/plain' });
    } finally {
      await Promise.all([api.delete('/mcps/as210'), api.delete('/mcps/as211')]);
    }
  });

  it('gives up a start that takes longer than its start_timeout', async () => {
    const spec = { name: 'mute', is_stateful: true, start_timeout: 0.5, mcp_config: { type: 'stdio_mcp', command: 'sh', args: ['-c', `sleep 600 # ${marker}`] } };
    expect(await api.post('/mcps', spec)).toEqual(expect.objectContaining({ status: 500, body: { detail: 'connect failed: the server did not start within 0.5 s (start_timeout)' } }));
    expect(await waitUntilGone(marker)).toEqual([]);
  });

  it('registers a start whose client gave up, and lets the same spec posted meanwhile wait for it', async () => {
    // A cold `npx -y` install: the server speaks only after a while, after AgentScope's host stopped waiting.
    const spec = { name: 'late', is_stateful: true, mcp_config: { type: 'stdio_mcp', command: 'sh', args: ['-c', `sleep 1.5; exec "${process.execPath}" "${EVERYTHING}" stdio ${marker}`] } };
    const host = new AbortController();
    const first = fetch(api.url('/mcps'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec), signal: host.signal });
    await expect.poll(() => processesWith(marker).length).toBeGreaterThan(0);
    host.abort();
    await expect(first).rejects.toThrow();
    expect(await api.post('/mcps', spec)).toMatchObject({ status: 200, body: { ok: true } });
    expect((await api.get('/mcps')).body).toEqual([spec]);
    expect((await api.delete('/mcps/late')).status).toBe(200);
    expect(await waitUntilGone(marker)).toEqual([]);
  });

  it('stops a start still under way on DELETE', async () => {
    const spec = { name: 'stuck', is_stateful: true, mcp_config: { type: 'stdio_mcp', command: 'sh', args: ['-c', `sleep 600 # ${marker}`] } };
    const starting = api.post('/mcps', spec);
    await expect.poll(() => processesWith(marker).length).toBeGreaterThan(0);
    expect(await api.delete('/mcps/stuck')).toMatchObject({ status: 200, body: { ok: true } });
    expect(await starting).toMatchObject({ status: 500, body: { detail: "connect failed: 'stuck' was removed while it was starting" } });
    expect(await waitUntilGone(marker)).toEqual([]);
  });

  describe('with a registered server', () => {
    beforeAll(async () => {
      expect((await api.post('/mcps', stdioSpec('ev', marker))).status).toBe(200);
    });
    afterAll(async () => {
      await api.delete('/mcps/ev');
    });

    it('calls echo and answers an AgentScope ToolChunk', async () => {
      const res = await api.post('/mcps/ev/tools/echo', { arguments: { message: 'hello gateway' } });
      expect(res.status).toBe(200);
      const { chunk } = res.body as { chunk: Record<string, unknown> };
      expect(Object.keys(chunk)).toEqual(['content', 'state', 'is_last', 'metadata', 'id']);
      expect(chunk).toMatchObject({ state: 'running', is_last: true, metadata: {} });
      expect(chunk.id).toMatch(/^[0-9a-f]{32}$/);
      expect(chunk.content).toEqual([
        { type: 'text', text: 'Echo: hello gateway', id: expect.stringMatching(/^[0-9a-f]{32}$/), created_at: expect.any(String), finished_at: null },
      ]);
    });

    it('calls get-sum', async () => {
      const res = await api.post('/mcps/ev/tools/get-sum', { arguments: { a: 2, b: 40 } });
      expect(res.status).toBe(200);
      expect((res.body as { chunk: { content: { text: string }[] } }).chunk.content.map((b) => b.text)).toEqual(['The sum of 2 and 40 is 42.']);
    });

    it('returns get-tiny-image as a data block with a base64 source between two text blocks', async () => {
      const res = await api.post('/mcps/ev/tools/get-tiny-image', { arguments: {} });
      expect(res.status).toBe(200);
      const content = (res.body as { chunk: { content: Record<string, unknown>[] } }).chunk.content;
      expect(content.map((b) => b.type)).toEqual(['text', 'data', 'text']);
      const data = content[1] as { source: { type: string; media_type: string; data: string }; name: null };
      expect(data.source.type).toBe('base64');
      expect(data.source.media_type).toBe('image/png');
      expect(data.source.data.startsWith(TINY_PNG_PREFIX)).toBe(true);
      expect(Buffer.from(data.source.data, 'base64').subarray(1, 4).toString()).toBe('PNG');
    });

    it('marks a tool error (bad arguments) as an error chunk', async () => {
      const res = await api.post('/mcps/ev/tools/echo', { arguments: {} });
      expect(res.status).toBe(200);
      const chunk = (res.body as { chunk: { state: string; content: { text: string }[] } }).chunk;
      expect(chunk.state).toBe('error');
      expect(chunk.content[0]?.text).toContain('message');
    });

    it('serves many concurrent calls to one server', async () => {
      const slow = Array.from({ length: 3 }, () => api.post('/mcps/ev/tools/trigger-long-running-operation', { arguments: { duration: 0.4, steps: 2 } }));
      const echoes = Array.from({ length: 20 }, (_, i) => api.post('/mcps/ev/tools/echo', { arguments: { message: `m${i}` } }));
      const answers = await Promise.all([...slow, ...echoes]);
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
      const texts = answers.slice(3).map((a) => (a.body as { chunk: { content: { text: string }[] } }).chunk.content[0]?.text);
      expect(texts).toEqual(Array.from({ length: 20 }, (_, i) => `Echo: m${i}`));
    });

    it('accepts and ignores the headers an E2B client proxy adds', async () => {
      const proxied = new GatewayApi(d.gatewayUrl, {}, { 'E2b-Sandbox-Id': 'sbx-123', 'E2b-Sandbox-Port': '5600' });
      expect((await proxied.get('/mcps')).status).toBe(200);
      expect((await proxied.post('/mcps/ev/tools/echo', { arguments: { message: 'via proxy' } })).status).toBe(200);
    });

    it('answers 409 for a duplicate name', async () => {
      const res = await api.post('/mcps', stdioSpec('ev', marker));
      expect(res).toMatchObject({ status: 409, body: { detail: "'ev' already exists for agent='' session=''" } });
    });

    it('answers 404 for an unknown tool', async () => {
      const res = await api.post('/mcps/ev/tools/no-such-tool', { arguments: {} });
      expect(res).toMatchObject({ status: 404, body: { detail: "Tool 'no-such-tool' not found in MCP server 'ev'" } });
    });

    it('answers 400 for a tool call body that is not JSON or has non-object arguments', async () => {
      expect((await api.post('/mcps/ev/tools/echo', undefined, '{oops')).status).toBe(400);
      const res = await api.post('/mcps/ev/tools/echo', { arguments: [1, 2] });
      expect(res).toMatchObject({ status: 400, body: { detail: 'arguments must be a JSON object' } });
    });
  });

  it('answers 400 with a detail for an empty body, bad JSON, a bad name or a bad config', async () => {
    const bad = async (raw: string) => {
      const res = await api.post('/mcps', undefined, raw);
      expect(res.status, raw).toBe(400);
      return (res.body as { detail: string }).detail;
    };
    expect(await bad('')).toContain('body required');
    expect(await bad('{"name": ')).toContain('not valid JSON');
    expect(await bad('[1]')).toBe('body must be a JSON object');
    expect(await bad(JSON.stringify(stdioSpec('has space', marker)))).toContain('is invalid');
    expect(await bad(JSON.stringify(stdioSpec('../x', marker)))).toContain('is invalid');
    expect(await bad(JSON.stringify({ name: 'x' }))).toContain('is_stateful');
    expect(await bad(JSON.stringify({ ...stdioSpec('x', marker), is_stateful: false }))).toContain('must be stateful');
    expect(await bad(JSON.stringify({ name: 'x', is_stateful: true, mcp_config: { type: 'grpc_mcp' } }))).toContain('mcp_config.type');
    expect((await api.get('/mcps')).body).toEqual([]);
  });

  it('answers 413 for a body over 16 MiB instead of reading it all', async () => {
    const res = await api.post('/mcps', undefined, ' '.repeat(16 * 1024 * 1024 + 1));
    expect(res).toMatchObject({ status: 413, body: { detail: 'request body larger than 16777216 bytes' } });
    expect((await fetch(`${d.gatewayUrl}/health`)).status).toBe(200);
  });

  it('answers 413 for a chunked body that grows past 16 MiB, without a Content-Length to go by', async () => {
    const chunk = new Uint8Array(1024 * 1024).fill(0x20);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 17) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await fetch(`${d.gatewayUrl}/mcps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ detail: 'request body larger than 16777216 bytes' });
    expect((await fetch(`${d.gatewayUrl}/health`)).status).toBe(200);
  });

  it('answers 404 for an unknown MCP on every route', async () => {
    const detail = "'ghost' not found for agent='' session=''";
    expect(await api.get('/mcps/ghost/tools')).toMatchObject({ status: 404, body: { detail } });
    expect(await api.post('/mcps/ghost/tools/echo', { arguments: {} })).toMatchObject({ status: 404, body: { detail } });
    expect(await api.delete('/mcps/ghost')).toMatchObject({ status: 404, body: { detail } });
    expect(await api.get('/no/such/route')).toMatchObject({ status: 404, body: { detail: 'Not Found' } });
  });

  it('answers 500 "connect failed" for a command that does not exist or exits at once, and keeps serving', async () => {
    const missing = await api.post('/mcps', { ...stdioSpec('broken', marker), mcp_config: { type: 'stdio_mcp', command: 'no-such-mcp-server-cmd' } });
    expect(missing).toMatchObject({ status: 500, body: { detail: "connect failed: command 'no-such-mcp-server-cmd' not found" } });

    const exits = await api.post('/mcps', {
      ...stdioSpec('broken', marker),
      mcp_config: { type: 'stdio_mcp', command: 'sh', args: ['-c', 'echo cannot start: missing API key >&2; exit 3'] },
    });
    expect(exits.status).toBe(500);
    const detail = (exits.body as { detail: string }).detail;
    expect(detail).toMatch(/^connect failed: process \d+ exited with code 3 before the MCP handshake finished/);
    expect(detail).toContain('stderr: cannot start: missing API key');

    const badCwd = await api.post('/mcps', { ...stdioSpec('broken', marker), mcp_config: { type: 'stdio_mcp', command: 'node', cwd: '/no/such/dir' } });
    expect(badCwd).toMatchObject({ status: 500, body: { detail: "connect failed: cwd '/no/such/dir' is not an existing directory" } });

    expect((await api.get('/mcps')).body).toEqual([]);
    expect((await fetch(`${d.gatewayUrl}/health`)).status).toBe(200);
  });

  it('keeps (agent, session) pairs apart: same name twice, deleting one leaves the other working', async () => {
    const s1 = api.with({ agent_id: 'agent-1', session_id: 'one' });
    const s2 = api.with({ agent_id: 'agent-1', session_id: 'two' });
    const m1 = `${marker}-s1`;
    const m2 = `${marker}-s2`;
    expect((await s1.post('/mcps', stdioSpec('ev', m1))).status).toBe(200);
    expect((await s2.post('/mcps', stdioSpec('ev', m2))).status).toBe(200);
    expect((await s1.get('/mcps')).body).toEqual([stdioSpec('ev', m1)]);
    expect((await s2.get('/mcps')).body).toEqual([stdioSpec('ev', m2)]);
    expect((await api.get('/mcps')).body).toEqual([]);
    expect((await api.with({ agent_id: 'agent-2', session_id: 'one' }).get('/mcps')).body).toEqual([]);

    expect(await s1.delete('/mcps/ev')).toMatchObject({ status: 200 });
    expect(await waitUntilGone(m1)).toEqual([]);
    expect(processesWith(m2)).toHaveLength(1);
    expect(await s1.post('/mcps/ev/tools/echo', { arguments: { message: 'x' } })).toMatchObject({
      status: 404,
      body: { detail: "'ev' not found for agent='agent-1' session='one'" },
    });
    const still = await s2.post('/mcps/ev/tools/echo', { arguments: { message: 'still here' } });
    expect((still.body as { chunk: { content: { text: string }[] } }).chunk.content[0]?.text).toBe('Echo: still here');
    expect((await s2.delete('/mcps/ev')).status).toBe(200);
  });

  it('bounds a tool call with execution_timeout and keeps the server usable', async () => {
    const m = `${marker}-timeout`;
    expect((await api.post('/mcps', stdioSpec('slow', m, { execution_timeout: 0.3 }))).status).toBe(200);
    const res = await api.post('/mcps/slow/tools/trigger-long-running-operation', { arguments: { duration: 5, steps: 1 } });
    expect(res).toMatchObject({ status: 500, body: { detail: "tool 'trigger-long-running-operation' of mcp 'slow' did not finish within 0.3 s (execution_timeout)" } });
    expect((await api.post('/mcps/slow/tools/echo', { arguments: { message: 'alive' } })).status).toBe(200);
    expect((await api.delete('/mcps/slow')).status).toBe(200);
  });

  it('reports a server killed from outside with a clear error, then lets it be registered again', async () => {
    const m = `${marker}-killed`;
    expect((await api.post('/mcps', stdioSpec('victim', m))).status).toBe(200);
    const [pid] = processesWith(m);
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGKILL');
    expect(await waitUntilGone(m)).toEqual([]);

    const call = await api.post('/mcps/victim/tools/echo', { arguments: { message: 'anyone?' } });
    expect(call.status).toBe(500);
    expect((call.body as { detail: string }).detail).toMatch(
      new RegExp(`^mcp 'victim' is not running: process ${pid} was killed by SIGKILL\\. Register it again \\(POST /mcps\\) to restart it\\.`),
    );
    expect((await api.get('/mcps/victim/tools')).status).toBe(500);

    expect(await api.post('/mcps', stdioSpec('victim', m))).toMatchObject({ status: 200, body: { ok: true } });
    const again = await api.post('/mcps/victim/tools/echo', { arguments: { message: 'back' } });
    expect((again.body as { chunk: { content: { text: string }[] } }).chunk.content[0]?.text).toBe('Echo: back');
    expect((await api.delete('/mcps/victim')).status).toBe(200);
    expect(await waitUntilGone(m)).toEqual([]);
  });

  it('tolerates a server that prints a non-JSON banner on stdout before speaking MCP', async () => {
    const m = `${marker}-banner`;
    const noisy = {
      ...stdioSpec('noisy', m),
      mcp_config: { type: 'stdio_mcp', command: 'sh', args: ['-c', `echo 'welcome to my server'; exec "${process.execPath}" "${EVERYTHING}" stdio ${m}`] },
    };
    expect((await api.post('/mcps', noisy)).status).toBe(200);
    const res = await api.post('/mcps/noisy/tools/echo', { arguments: { message: 'past the banner' } });
    expect((res.body as { chunk: { content: { text: string }[] } }).chunk.content[0]?.text).toBe('Echo: past the banner');
    expect((await api.delete('/mcps/noisy')).status).toBe(200);
  });

  it('leaves no process behind after DELETE, even for a server started through a shell', async () => {
    const m = `${marker}-shell`;
    const viaShell = {
      ...stdioSpec('wrapped', m),
      // The shell stays as the parent (the trailing command keeps it from exec'ing node).
      mcp_config: { type: 'stdio_mcp', command: 'sh', args: ['-c', `"${process.execPath}" "${EVERYTHING}" stdio ${m}; true`] },
    };
    expect((await api.post('/mcps', viaShell)).status).toBe(200);
    expect(processesWith(m).length).toBe(2);
    expect((await api.delete('/mcps/wrapped')).status).toBe(200);
    expect(await waitUntilGone(m, 1000)).toEqual([]);
  });
});

describe('gateway lifecycle', () => {
  it('leaves no upstream process after the daemon gets SIGTERM', async () => {
    const marker = `sbx-gw-term-${randomUUID()}`;
    const d = await startDaemon({ gatewayPort: 'free' });
    const api = new GatewayApi(d.gatewayUrl);
    try {
      expect((await api.post('/mcps', stdioSpec('one', marker))).status).toBe(200);
      expect((await api.with({ agent_id: 'b' }).post('/mcps', stdioSpec('two', marker))).status).toBe(200);
      const shell = { ...stdioSpec('three', marker), mcp_config: { type: 'stdio_mcp', command: 'sh', args: ['-c', `"${process.execPath}" "${EVERYTHING}" stdio ${marker}; true`] } };
      expect((await api.post('/mcps', shell)).status).toBe(200);
      expect(processesWith(marker)).toHaveLength(4);
    } finally {
      expect(await d.stop('SIGTERM')).toBe(0);
    }
    expect(processesWith(marker)).toEqual([]);
  });
});

describe('gateway lifecycle while a server is starting', () => {
  it('stops a server whose registration is still waiting for its handshake when the daemon gets SIGTERM', async () => {
    const marker = `sbx-gw-pending-${randomUUID()}`;
    const d = await startDaemon({ gatewayPort: 'free' });
    const api = new GatewayApi(d.gatewayUrl);
    // A process that never speaks MCP: the registration waits for its handshake.
    const silent = { ...stdioSpec('mute', marker), mcp_config: { type: 'stdio_mcp', command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)', marker] } };
    const pending = api.post('/mcps', silent).catch((err: unknown) => err);
    try {
      const deadline = Date.now() + 5000;
      while (processesWith(marker).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(processesWith(marker)).toHaveLength(1);
    } finally {
      expect(await d.stop('SIGTERM')).toBe(0);
    }
    await pending;
    expect(processesWith(marker)).toEqual([]);
  });
});

describe('gateway health and auth', () => {
  it('answers /health with the nonce JSON when started with --instance-nonce', async () => {
    const d = await startDaemon({ gatewayPort: 'free', args: ['--instance-nonce', 'nonce-42', '--gateway-token', 'gw-secret'] });
    try {
      const res = await fetch(`${d.gatewayUrl}/health`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok', instance_nonce: 'nonce-42' });
    } finally {
      await d.stop();
    }
  });

  it('requires the gateway token as a Bearer token when configured', async () => {
    const d = await startDaemon({ gatewayPort: 'free', args: ['--gateway-token', 'gw-secret'] });
    try {
      const anon = new GatewayApi(d.gatewayUrl);
      expect((await anon.get('/health')).status).toBe(200);
      const missing = await anon.get('/mcps');
      expect(missing.status).toBe(401);
      expect((missing.body as { detail: string }).detail).toContain('Bearer');
      expect((await anon.with({}, { authorization: 'Bearer wrong' }).get('/mcps')).status).toBe(401);
      expect((await anon.with({}, { 'x-access-token': 'gw-secret' }).get('/mcps')).status).toBe(401);
      expect((await anon.post('/mcps', stdioSpec('ev', 'never-started'))).status).toBe(401);
      expect(processesWith('never-started')).toEqual([]);
      const authed = anon.with({}, { authorization: 'Bearer gw-secret' });
      expect(await authed.get('/mcps')).toMatchObject({ status: 200, body: [] });
    } finally {
      await d.stop();
    }
  });
});
