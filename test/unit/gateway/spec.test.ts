import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/gateway/errors.js';
import { parseMcpSpec, parseRuntimeHeaders, toolEnabled } from '../../../src/gateway/spec.js';

const stdio = { name: 'fs', is_stateful: true, mcp_config: { type: 'stdio_mcp', command: 'node', args: ['server.js'] } };

function invalidMessage(body: unknown): string {
  try {
    parseMcpSpec(body);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).kind).toBe('invalid');
    return (err as Error).message;
  }
  throw new Error('expected the spec to be refused');
}

describe('parseMcpSpec', () => {
  it('accepts a stdio spec as AgentScope dumps it and keeps the raw body', () => {
    const body = { ...stdio, mcp_config: { ...stdio.mcp_config, env: { A: '1' }, cwd: '/tmp', encoding_error_handler: 'strict' }, enable_tools: null, disable_tools: null, execution_timeout: null };
    const spec = parseMcpSpec(body);
    expect(spec.name).toBe('fs');
    expect(spec.config).toEqual({ type: 'stdio_mcp', command: 'node', args: ['server.js'], env: { A: '1' }, cwd: '/tmp' });
    expect(spec.executionTimeoutMs).toBeUndefined();
    expect(spec.raw).toBe(body);
  });

  it('picks SSE by the URL path and streamable HTTP otherwise, with a 30 s default timeout', () => {
    const http = (url: string, extra = {}) => parseMcpSpec({ name: 'h', is_stateful: false, mcp_config: { type: 'http_mcp', url, ...extra } }).config;
    expect(http('http://127.0.0.1:3001/mcp')).toMatchObject({ transport: 'streamable-http', timeoutMs: 30_000 });
    expect(http('http://127.0.0.1:3001/sse')).toMatchObject({ transport: 'sse' });
    expect(http('http://127.0.0.1:3001/sse?key=1')).toMatchObject({ transport: 'sse' });
    expect(http('http://h/mcp', { timeout: 2.5, headers: { 'X-Key': 'k' } })).toMatchObject({ timeoutMs: 2500, headers: { 'X-Key': 'k' } });
    expect(http('http://h/mcp', { timeout: null })).toMatchObject({ timeoutMs: undefined });
  });

  it('converts execution_timeout to milliseconds; 0 means no bound, as in AgentScope', () => {
    expect(parseMcpSpec({ ...stdio, execution_timeout: 1.5 }).executionTimeoutMs).toBe(1500);
    expect(parseMcpSpec({ ...stdio, execution_timeout: 0 }).executionTimeoutMs).toBeUndefined();
  });

  it('bounds a start only when start_timeout asks for it', () => {
    expect(parseMcpSpec(stdio).startTimeoutMs).toBeUndefined();
    expect(parseMcpSpec({ ...stdio, start_timeout: 90 }).startTimeoutMs).toBe(90_000);
    expect(invalidMessage({ ...stdio, start_timeout: 'soon' })).toBe('start_timeout must be a non-negative number of seconds or null');
  });

  it('knows an AgentScope 2.0.11 host by the stream_progress field its MCPClient dumps', () => {
    expect(parseMcpSpec(stdio).chunkDialect).toBe('2.0.10');
    expect(parseMcpSpec({ ...stdio, stream_progress: false }).chunkDialect).toBe('2.0.11');
  });

  it('names what is wrong with a bad spec', () => {
    expect(invalidMessage(null)).toBe('body must be a JSON object');
    expect(invalidMessage([])).toBe('body must be a JSON object');
    expect(invalidMessage({ ...stdio, name: '' })).toBe('name required');
    expect(invalidMessage({ ...stdio, name: 'a b' })).toContain('"a b" is invalid');
    expect(invalidMessage({ ...stdio, name: 'x/y' })).toContain('is invalid');
    expect(invalidMessage({ ...stdio, is_stateful: undefined })).toContain('is_stateful');
    expect(invalidMessage({ ...stdio, is_stateful: false })).toContain('STDIO MCP must be stateful');
    expect(invalidMessage({ ...stdio, mcp_config: undefined })).toContain('mcp_config is required');
    expect(invalidMessage({ ...stdio, mcp_config: { type: 'ws_mcp' } })).toContain("'stdio_mcp' or 'http_mcp'");
    expect(invalidMessage({ ...stdio, mcp_config: { type: 'stdio_mcp' } })).toContain('command');
    expect(invalidMessage({ ...stdio, mcp_config: { ...stdio.mcp_config, args: 'x' } })).toContain('mcp_config.args');
    expect(invalidMessage({ ...stdio, mcp_config: { ...stdio.mcp_config, env: { A: 1 } } })).toContain('mcp_config.env.A');
    expect(invalidMessage({ name: 'h', is_stateful: true, mcp_config: { type: 'http_mcp', url: 'not a url' } })).toContain('is not a URL');
    expect(invalidMessage({ name: 'h', is_stateful: true, mcp_config: { type: 'http_mcp', url: 'ftp://x/mcp' } })).toContain('http or https');
    expect(invalidMessage({ name: 'h', is_stateful: true, mcp_config: { type: 'http_mcp', url: 'http://x/mcp', timeout: -1 } })).toContain('timeout');
    expect(invalidMessage({ ...stdio, enable_tools: ['a', 'b'], disable_tools: ['b'] })).toContain('overlap: b');
    expect(invalidMessage({ ...stdio, enable_tools: [1] })).toContain('enable_tools');
    expect(invalidMessage({ ...stdio, execution_timeout: 'soon' })).toContain('execution_timeout');
  });
});

describe('toolEnabled', () => {
  it('applies enable_tools, then disable_tools', () => {
    expect(toolEnabled({ enableTools: undefined, disableTools: undefined }, 'x')).toBe(true);
    expect(toolEnabled({ enableTools: ['a'], disableTools: undefined }, 'a')).toBe(true);
    expect(toolEnabled({ enableTools: ['a'], disableTools: undefined }, 'b')).toBe(false);
    expect(toolEnabled({ enableTools: undefined, disableTools: ['a'] }, 'a')).toBe(false);
  });
});

describe('parseRuntimeHeaders', () => {
  it('accepts a map of header names to visible-ASCII values', () => {
    expect(parseRuntimeHeaders({ Authorization: 'Bearer x', 'X-Tab': 'a\tb' })).toEqual({ Authorization: 'Bearer x', 'X-Tab': 'a\tb' });
    expect(parseRuntimeHeaders({})).toEqual({});
  });

  it('refuses what httpx would choke on or owns itself', () => {
    const refuse = (v: unknown) => {
      try {
        parseRuntimeHeaders(v);
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(refuse(['x'])).toBe('Runtime headers must be a dict.');
    expect(refuse({ 'Bad Name': 'x' })).toBe("Runtime header 'Bad Name' is invalid.");
    expect(refuse({ 'X-A': 'line\r\nbreak' })).toBe("Runtime header 'X-A' is invalid.");
    expect(refuse({ 'X-A': 1 })).toBe("Runtime header 'X-A' is invalid.");
    expect(refuse({ 'Content-Length': '3' })).toBe("Runtime header 'Content-Length' is owned by the HTTP layer.");
  });
});
