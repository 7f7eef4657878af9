import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/gateway/errors.js';
import { McpRegistry, type Scope } from '../../../src/gateway/registry.js';
import { parseMcpSpec } from '../../../src/gateway/spec.js';
import { createLogger } from '../../../src/log.js';

const EVERYTHING = path.resolve('node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const spec = (name: string, extra: Record<string, unknown> = {}) =>
  parseMcpSpec({ name, is_stateful: true, mcp_config: { type: 'stdio_mcp', command: process.execPath, args: [EVERYTHING, 'stdio'] }, ...extra });
const alice: Scope = { agentId: 'a', sessionId: 's1' };
const bob: Scope = { agentId: 'a', sessionId: 's2' };

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function rejection(p: Promise<unknown>): Promise<GatewayError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

describe('McpRegistry', () => {
  let registry: McpRegistry;
  afterEach(async () => {
    await registry?.closeAll();
  });

  it('registers per (agent, session) pair: same name twice, independent servers', async () => {
    registry = new McpRegistry(createLogger('silent'));
    const [ra, rb] = await Promise.all([registry.register(alice, spec('ev')), registry.register(bob, spec('ev'))]);
    expect(ra.upstream.pid).not.toBe(rb.upstream.pid);
    expect(registry.list(alice).map((r) => r.spec.name)).toEqual(['ev']);
    expect(registry.list({ agentId: 'a', sessionId: 'other' })).toEqual([]);

    await registry.remove(alice, 'ev');
    expect(registry.list(alice)).toEqual([]);
    const result = await registry.callTool(bob, 'ev', 'echo', { message: 'still here' });
    expect(result.content).toEqual([{ type: 'text', text: 'Echo: still here' }]);
  });

  it('refuses a different spec under a name still connecting, and a duplicate once registered', async () => {
    registry = new McpRegistry(createLogger('silent'));
    const results = await Promise.allSettled([registry.register(alice, spec('ev')), registry.register(alice, spec('ev', { enable_tools: ['echo'] }))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    expect(((results[1] as PromiseRejectedResult).reason as GatewayError).kind).toBe('conflict');
    expect((await rejection(registry.register(alice, spec('ev')))).message).toBe("'ev' already exists for agent='a' session='s1'");
  });

  it('lets the same spec posted again while it is starting wait for that one start', async () => {
    registry = new McpRegistry(createLogger('silent'));
    const [first, again] = await Promise.all([registry.register(alice, spec('ev')), registry.register(alice, spec('ev'))]);
    expect(again).toBe(first);
    expect(registry.list(alice)).toHaveLength(1);
  });

  it('stops a start still under way when the name is removed, and tells its caller', async () => {
    registry = new McpRegistry(createLogger('silent'));
    // A server that never answers the handshake: only removal (or start_timeout) ends its start.
    const silent = parseMcpSpec({ name: 'mute', is_stateful: true, mcp_config: { type: 'stdio_mcp', command: 'sleep', args: ['600'] } });
    const starting = registry.register(alice, silent);
    await registry.remove(alice, 'mute');
    expect((await rejection(starting)).message).toBe("connect failed: 'mute' was removed while it was starting");
    expect(registry.list(alice)).toEqual([]);
  });

  it('gives up a start that takes longer than start_timeout', async () => {
    registry = new McpRegistry(createLogger('silent'));
    const slow = parseMcpSpec({ name: 'slow', is_stateful: true, start_timeout: 0.2, mcp_config: { type: 'stdio_mcp', command: 'sleep', args: ['600'] } });
    expect((await rejection(registry.register(alice, slow))).message).toBe('connect failed: the server did not start within 0.2 s (start_timeout)');
  });

  it('tells subscribers when a registration comes and goes, and what its server announces', async () => {
    registry = new McpRegistry(createLogger('silent'));
    const events: string[] = [];
    registry.subscribe((e) => events.push(`${e.kind} ${e.mcp}${e.kind === 'notification' ? ` ${e.notification.method}` : ''}`));
    await registry.register(alice, spec('ev'));
    // server-everything sends one log line at once when simulated logging is switched on.
    await registry.callTool(alice, 'ev', 'toggle-simulated-logging', {});
    await expect.poll(() => events).toContain('notification ev notifications/message');
    await registry.remove(alice, 'ev');
    expect(events[0]).toBe('registered ev');
    expect(events.at(-1)).toBe('removed ev');
  });

  it('reports unknown names and tools as not_found', async () => {
    registry = new McpRegistry(createLogger('silent'));
    expect((await rejection(registry.remove(alice, 'nope'))).kind).toBe('not_found');
    await registry.register(alice, spec('ev'));
    const err = await rejection(registry.callTool(alice, 'ev', 'no-such-tool', {}));
    expect(err.kind).toBe('not_found');
    expect(err.message).toBe("Tool 'no-such-tool' not found in MCP server 'ev'");
  });

  it('stops the server when a registration is removed', async () => {
    registry = new McpRegistry(createLogger('silent'));
    const reg = await registry.register(alice, spec('ev'));
    const pid = reg.upstream.pid;
    expect(alive(pid)).toBe(true);
    await registry.remove(alice, 'ev');
    expect(alive(pid)).toBe(false);
  });

  it('reports a server killed from outside, and lets the same name be registered again', async () => {
    registry = new McpRegistry(createLogger('silent'));
    const reg = await registry.register(alice, spec('ev'));
    process.kill(reg.upstream.pid!, 'SIGKILL');
    await expect.poll(() => reg.upstream.failure).toBeDefined();
    const err = await rejection(registry.callTool(alice, 'ev', 'echo', { message: 'x' }));
    expect(err.kind).toBe('upstream');
    expect(err.message).toMatch(/'ev' is not running: process \d+ was killed by SIGKILL/);

    await registry.register(alice, spec('ev'));
    const result = await registry.callTool(alice, 'ev', 'echo', { message: 'back' });
    expect(result.content).toEqual([{ type: 'text', text: 'Echo: back' }]);
  });

  it('closes every server on closeAll and refuses new registrations afterwards', async () => {
    registry = new McpRegistry(createLogger('silent'));
    const regs = await Promise.all([registry.register(alice, spec('one')), registry.register(bob, spec('two'))]);
    await registry.closeAll();
    for (const r of regs) expect(alive(r.upstream.pid)).toBe(false);
    expect((await rejection(registry.register(alice, spec('three')))).message).toContain('shutting down');
  });
});
