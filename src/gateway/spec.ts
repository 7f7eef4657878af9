import { GatewayError, quote } from './errors.js';

/** How to start a local MCP server: AgentScope's `StdioMCPConfig`. */
export interface StdioUpstreamConfig {
  type: 'stdio_mcp';
  command: string;
  args: string[];
  env: Record<string, string> | undefined;
  cwd: string | undefined;
}

/** Where a remote MCP server listens: AgentScope's `HttpMCPConfig`. */
export interface HttpUpstreamConfig {
  type: 'http_mcp';
  url: URL;
  /** SSE when the URL path ends in `/sse` (or `/messages/`), streamable HTTP otherwise. */
  transport: 'streamable-http' | 'sse';
  headers: Record<string, string> | undefined;
  /** Bound on waiting for each HTTP response; undefined waits indefinitely. */
  timeoutMs: number | undefined;
}

/** A registration request: AgentScope's `MCPClient.model_dump()`, validated. */
export interface McpSpec {
  name: string;
  isStateful: boolean;
  config: StdioUpstreamConfig | HttpUpstreamConfig;
  enableTools: string[] | undefined;
  disableTools: string[] | undefined;
  /** Bound on one tool call; undefined waits indefinitely. */
  executionTimeoutMs: number | undefined;
  /**
   * Bound on starting the server (stdio: spawn, handshake and first tool listing); undefined waits
   * indefinitely, as AgentScope's gateway does. sandboxd's own field `start_timeout` (seconds).
   */
  startTimeoutMs: number | undefined;
  /**
   * Which AgentScope release's MCP result → ToolChunk conversion the host expects. 2.0.11 added the
   * `stream_progress` field to `MCPClient`, so its `model_dump()` carries the key and 2.0.10's does not.
   */
  chunkDialect: ChunkDialect;
  /** The body as posted; `GET /mcps` answers it unchanged. */
  raw: Record<string, unknown>;
}

export type ChunkDialect = '2.0.10' | '2.0.11';

export const MCP_NAME = /^[A-Za-z0-9_-]+$/;

/** httpx's default in AgentScope's `HttpMCPConfig.timeout`. */
const DEFAULT_HTTP_TIMEOUT_S = 30;

function invalid(message: string): never {
  throw new GatewayError('invalid', message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalStringList(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) invalid(`${field} must be a list of strings`);
  return v as string[];
}

function optionalStringMap(v: unknown, field: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) invalid(`${field} must be an object of strings`);
  for (const [k, val] of Object.entries(v)) if (typeof val !== 'string') invalid(`${field}.${k} must be a string`);
  return v as Record<string, string>;
}

/** Seconds (number or null) to milliseconds; 0 and null mean no bound, as in AgentScope. */
function optionalSeconds(v: unknown, field: string, fallback?: number): number | undefined {
  if (v === undefined) v = fallback;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) invalid(`${field} must be a non-negative number of seconds or null`);
  return v === 0 ? undefined : Math.max(1, Math.round(v * 1000));
}

function parseStdio(c: Record<string, unknown>): StdioUpstreamConfig {
  if (typeof c.command !== 'string' || c.command.trim() === '') invalid('mcp_config.command must be a non-empty string');
  if (c.cwd !== undefined && c.cwd !== null && typeof c.cwd !== 'string') invalid('mcp_config.cwd must be a string or null');
  const handler = c.encoding_error_handler;
  if (handler !== undefined && handler !== 'strict' && handler !== 'ignore' && handler !== 'replace') {
    invalid("mcp_config.encoding_error_handler must be 'strict', 'ignore' or 'replace'");
  }
  return {
    type: 'stdio_mcp',
    command: c.command,
    args: optionalStringList(c.args, 'mcp_config.args') ?? [],
    env: optionalStringMap(c.env, 'mcp_config.env'),
    cwd: typeof c.cwd === 'string' && c.cwd !== '' ? c.cwd : undefined,
  };
}

function parseHttp(c: Record<string, unknown>): HttpUpstreamConfig {
  if (typeof c.url !== 'string') invalid('mcp_config.url must be a string');
  let url: URL;
  try {
    url = new URL(c.url);
  } catch {
    invalid(`mcp_config.url '${c.url}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') invalid(`mcp_config.url '${c.url}' must be http or https`);
  if (c.oauth !== undefined && c.oauth !== null) invalid('mcp_config.oauth is not supported by this gateway; pass credentials in mcp_config.headers');
  const sse = url.pathname.endsWith('/sse') || url.pathname.endsWith('/messages/');
  return {
    type: 'http_mcp',
    url,
    transport: sse ? 'sse' : 'streamable-http',
    headers: optionalStringMap(c.headers, 'mcp_config.headers'),
    timeoutMs: optionalSeconds(c.timeout, 'mcp_config.timeout', DEFAULT_HTTP_TIMEOUT_S),
  };
}

/**
 * Validates a `POST /mcps` body with the rules AgentScope's `MCPClient` enforces,
 * throwing `GatewayError('invalid')` with the offending field.
 */
export function parseMcpSpec(body: unknown): McpSpec {
  if (!isObject(body)) invalid('body must be a JSON object');
  const { name } = body;
  if (name === undefined || name === null || name === '') invalid('name required');
  if (typeof name !== 'string' || !MCP_NAME.test(name)) {
    invalid(`name ${JSON.stringify(name)} is invalid: only letters, digits, '_' and '-' are allowed`);
  }
  if (typeof body.is_stateful !== 'boolean') invalid('is_stateful is required and must be true or false');
  const c = body.mcp_config;
  if (!isObject(c)) invalid('mcp_config is required and must be an object');
  let config: McpSpec['config'];
  if (c.type === 'stdio_mcp') config = parseStdio(c);
  else if (c.type === 'http_mcp') config = parseHttp(c);
  else invalid(`mcp_config.type must be 'stdio_mcp' or 'http_mcp', not ${JSON.stringify(c.type ?? null)}`);
  if (config.type === 'stdio_mcp' && !body.is_stateful) invalid('STDIO MCP must be stateful (is_stateful=true)');

  const enableTools = optionalStringList(body.enable_tools, 'enable_tools');
  const disableTools = optionalStringList(body.disable_tools, 'disable_tools');
  const overlap = enableTools?.filter((t) => disableTools?.includes(t)) ?? [];
  if (overlap.length > 0) invalid(`enable_tools and disable_tools overlap: ${overlap.join(', ')}`);

  return {
    name,
    isStateful: body.is_stateful,
    config,
    enableTools,
    disableTools,
    executionTimeoutMs: optionalSeconds(body.execution_timeout, 'execution_timeout'),
    startTimeoutMs: optionalSeconds(body.start_timeout, 'start_timeout'),
    chunkDialect: 'stream_progress' in body ? '2.0.11' : '2.0.10',
    raw: body,
  };
}

/** Whether `enable_tools` / `disable_tools` let a tool through (as `MCPClient.list_tools` filters). */
export function toolEnabled(spec: Pick<McpSpec, 'enableTools' | 'disableTools'>, tool: string): boolean {
  if (spec.enableTools !== undefined && !spec.enableTools.includes(tool)) return false;
  if (spec.disableTools !== undefined && spec.disableTools.includes(tool)) return false;
  return true;
}

/** httpx fills these in from the URL and body; a value set by hand would break routing or framing. */
const RESERVED_HEADERS = new Set(['connection', 'content-length', 'host', 'transfer-encoding']);
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

/** Validates a runtime header map (`runtime_headers`, `PUT /mcps/{name}/runtime-headers`) as AgentScope does. */
export function parseRuntimeHeaders(v: unknown): Record<string, string> {
  if (!isObject(v)) invalid('Runtime headers must be a dict.');
  for (const [name, value] of Object.entries(v)) {
    if (typeof value !== 'string' || !HEADER_NAME.test(name) || !HEADER_VALUE.test(value)) invalid(`Runtime header ${quote(name)} is invalid.`);
    if (RESERVED_HEADERS.has(name.toLowerCase())) invalid(`Runtime header ${quote(name)} is owned by the HTTP layer.`);
  }
  return v as Record<string, string>;
}
