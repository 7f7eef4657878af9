import { Hono, type Context } from 'hono';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv-provider.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  type CallToolResult,
  type ServerCapabilities,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../log.js';
import type { FaceEnv } from '../face.js';
import { describeError, GatewayError } from './errors.js';
import type { McpRegistry, Registration, Scope } from './registry.js';
import { MAX_BODY_BYTES, scopeOf } from './rest.js';
import { toolEnabled } from './spec.js';

const GATEWAY_INFO = { name: 'sandboxd-gateway', version: '0.1.0' };
/** One schema validator for every per-request server: building an Ajv instance costs more than the request. */
const validator = new AjvJsonSchemaValidator();
/** Separates the MCP name from the tool name in the aggregated view. */
export const TOOL_SEPARATOR = '__';

/**
 * The (mcp, tool) pairs an aggregated name could mean, longest MCP name first: names may themselves
 * contain `__`, so `a__b__c` is `a` + `b__c` or `a__b` + `c` depending on what is registered.
 */
export function splitAggregatedName(mcpNames: string[], full: string): { mcp: string; tool: string }[] {
  return mcpNames
    .filter((n) => full.startsWith(n + TOOL_SEPARATOR) && full.length > n.length + TOOL_SEPARATOR.length)
    .sort((a, b) => b.length - a.length)
    .map((mcp) => ({ mcp, tool: full.slice(mcp.length + TOOL_SEPARATOR.length) }));
}

/** A tool failure an MCP client shows to its model, instead of a protocol error. */
function toolError(err: unknown): CallToolResult {
  return { content: [{ type: 'text', text: err instanceof GatewayError ? err.message : describeError(err) }], isError: true };
}

/** Upstream protocol errors pass through with their code; anything else is an internal error in words. */
function asMcpError(err: unknown): McpError {
  return err instanceof McpError ? err : new McpError(ErrorCode.InternalError, err instanceof GatewayError ? err.message : describeError(err));
}

/** Every tool of a pair's MCPs, named `{mcp}__{tool}`, with each registration's enable/disable filters. */
function aggregateServer(registry: McpRegistry, scope: Scope, logger: Logger): Server {
  const server = new Server(GATEWAY_INFO, { capabilities: { tools: {} }, jsonSchemaValidator: validator });
  server.setRequestHandler(ListToolsRequestSchema, async () => {
    const regs = registry.list(scope);
    const lists = await Promise.all(
      regs.map((reg) =>
        reg.upstream.listTools().catch((err: unknown) => {
          // One broken server must not hide the others' tools.
          logger.warn({ mcp: reg.spec.name, err: describeError(err) }, 'aggregated tools/list skipped an mcp');
          return [] as Tool[];
        }),
      ),
    );
    const tools: Tool[] = [];
    regs.forEach((reg, i) => {
      for (const t of lists[i] ?? []) if (toolEnabled(reg.spec, t.name)) tools.push({ ...t, name: reg.spec.name + TOOL_SEPARATOR + t.name });
    });
    return { tools };
  });
  server.setRequestHandler(CallToolRequestSchema, async (req) => {
    const regs = new Map(registry.list(scope).map((r) => [r.spec.name, r]));
    for (const { mcp, tool } of splitAggregatedName([...regs.keys()], req.params.name)) {
      const reg = regs.get(mcp)!;
      if (!toolEnabled(reg.spec, tool)) continue;
      try {
        if (!(await reg.upstream.findTool(tool))) continue;
        return await reg.upstream.callTool(tool, req.params.arguments ?? {}, req.params._meta);
      } catch (err) {
        return toolError(err);
      }
    }
    throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${req.params.name}`);
  });
  return server;
}

/** One upstream as it is: its tools, resources, prompts and completions, names unchanged. */
function forwardingServer(reg: Registration): Server {
  const up = reg.upstream;
  const has = up.capabilities;
  // Stateless endpoint: no subscriptions or list-changed notifications to promise.
  const capabilities: ServerCapabilities = {};
  if (has.tools) capabilities.tools = {};
  if (has.resources) capabilities.resources = {};
  if (has.prompts) capabilities.prompts = {};
  if (has.completions) capabilities.completions = {};
  const server = new Server(up.serverInfo, { capabilities, instructions: up.instructions, jsonSchemaValidator: validator });
  const pass = async <T>(fn: Parameters<typeof up.forward<T>>[0]): Promise<T> => {
    try {
      return await up.forward(fn);
    } catch (err) {
      throw asMcpError(err);
    }
  };
  if (has.tools) {
    server.setRequestHandler(ListToolsRequestSchema, (req) => pass((c, o) => c.listTools(req.params, o)));
    server.setRequestHandler(CallToolRequestSchema, async (req) => {
      try {
        return await up.callTool(req.params.name, req.params.arguments ?? {}, req.params._meta);
      } catch (err) {
        if (err instanceof McpError) throw err;
        return toolError(err);
      }
    });
  }
  if (has.resources) {
    server.setRequestHandler(ListResourcesRequestSchema, (req) => pass((c, o) => c.listResources(req.params, o)));
    server.setRequestHandler(ListResourceTemplatesRequestSchema, (req) => pass((c, o) => c.listResourceTemplates(req.params, o)));
    server.setRequestHandler(ReadResourceRequestSchema, (req) => pass((c, o) => c.readResource(req.params, o)));
  }
  if (has.prompts) {
    server.setRequestHandler(ListPromptsRequestSchema, (req) => pass((c, o) => c.listPrompts(req.params, o)));
    server.setRequestHandler(GetPromptRequestSchema, (req) => pass((c, o) => c.getPrompt(req.params, o)));
  }
  if (has.completions) {
    server.setRequestHandler(CompleteRequestSchema, (req) => pass((c, o) => c.complete(req.params, o)));
  }
  return server;
}

/**
 * Serves one Streamable HTTP POST with a fresh server and transport (stateless mode, JSON answers):
 * nothing to clean up when a client goes away, and every request sees the registry as it is now.
 */
async function serveStateless(c: Context, server: Server): Promise<Response> {
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
    maxRequestBodySize: MAX_BODY_BYTES,
  });
  await server.connect(transport);
  try {
    return await transport.handleRequest(c.req.raw);
  } finally {
    void server.close();
  }
}

function methodNotAllowed(c: Context): Response {
  c.header('Allow', 'POST');
  return c.json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed: this endpoint is stateless; POST JSON-RPC messages' }, id: null }, 405);
}

/** `/mcp` (the pair's MCPs aggregated) and `/mcps/{name}/mcp` (one MCP forwarded). */
export function mcpEndpoints(registry: McpRegistry, logger: Logger): Hono<FaceEnv> {
  const app = new Hono<FaceEnv>();
  app.post('/mcp', (c) => serveStateless(c, aggregateServer(registry, scopeOf(c), logger)));
  app.on(['GET', 'DELETE'], '/mcp', methodNotAllowed);
  app.post('/mcps/:name/mcp', (c) => serveStateless(c, forwardingServer(registry.get(scopeOf(c), c.req.param('name')))));
  app.on(['GET', 'DELETE'], '/mcps/:name/mcp', (c) => {
    registry.get(scopeOf(c), c.req.param('name'));
    return methodNotAllowed(c);
  });
  return app;
}
