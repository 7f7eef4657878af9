import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { RequestHandlerExtra, RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv-provider.js';
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
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type CallToolRequest,
  type CallToolResult,
  type Progress,
  type Prompt,
  type ReadResourceResult,
  type Resource,
  type ResourceTemplate,
  type ServerCapabilities,
  type ServerNotification,
  type ServerRequest,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../log.js';
import { describeError, GatewayError } from './errors.js';
import type { McpRegistry, Registration, Scope } from './registry.js';
import { toolEnabled } from './spec.js';
import type { Upstream } from './upstream.js';

const GATEWAY_INFO = { name: 'sandboxd-gateway', version: '0.1.0' };
/** One schema validator for every server: building an Ajv instance costs more than a request. */
const validator = new AjvJsonSchemaValidator();
/** Separates the MCP name from the tool (prompt, resource) name in the aggregated view. */
export const TOOL_SEPARATOR = '__';
/**
 * Aggregated resource URIs are `sandboxd-mcp://{mcp}/{upstream URI}`: unique across MCPs, still a URI
 * (the upstream URI becomes the path, verbatim), and templates keep their `{placeholders}`.
 */
const AGGREGATED_URI_PREFIX = 'sandboxd-mcp://';

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

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

export function aggregatedUri(mcp: string, uri: string): string {
  return `${AGGREGATED_URI_PREFIX}${mcp}/${uri}`;
}

/** The MCP and upstream URI an aggregated URI stands for; undefined for a URI this gateway did not make. */
export function splitAggregatedUri(uri: string): { mcp: string; uri: string } | undefined {
  if (!uri.startsWith(AGGREGATED_URI_PREFIX)) return undefined;
  const rest = uri.slice(AGGREGATED_URI_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1) return undefined;
  return { mcp: rest.slice(0, slash), uri: rest.slice(slash + 1) };
}

/** A tool failure an MCP client shows to its model, instead of a protocol error. */
function toolError(err: unknown): CallToolResult {
  return { content: [{ type: 'text', text: err instanceof GatewayError ? err.message : describeError(err) }], isError: true };
}

/** Upstream protocol errors pass through with their code; anything else is an internal error in words. */
function asMcpError(err: unknown): McpError {
  return err instanceof McpError ? err : new McpError(ErrorCode.InternalError, err instanceof GatewayError ? err.message : describeError(err));
}

async function pass<T>(up: Upstream, fn: (client: Client, opts: RequestOptions) => Promise<T>, extra: Extra): Promise<T> {
  try {
    return await up.forward(fn, { signal: extra.signal });
  } catch (err) {
    throw asMcpError(err);
  }
}

/**
 * Calls a tool upstream the way the caller asked: cancelled when the caller cancels (or its session
 * ends), and the upstream's progress re-addressed to the caller's own `progressToken`, on the caller's
 * stream. Progress still being sent goes out before the result (the SDK delivers notifications a tick late).
 */
async function callUpstream(up: Upstream, tool: string, req: CallToolRequest, extra: Extra): Promise<CallToolResult> {
  const token = req.params._meta?.progressToken;
  const sending: Promise<unknown>[] = [];
  const onprogress =
    token === undefined
      ? undefined
      : (p: Progress) => void sending.push(extra.sendNotification({ method: 'notifications/progress', params: { ...p, progressToken: token } }).catch(() => undefined));
  const result = await up.callTool(tool, req.params.arguments ?? {}, req.params._meta, { signal: extra.signal, onprogress });
  await Promise.all(sending);
  return result;
}

/** Every page of a paginated list. */
async function allPages<T>(list: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor?: string }>): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await list(cursor);
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return all;
}

/** Capabilities of the aggregated endpoint: it forwards list changes, logging and resource updates. */
const AGGREGATE_CAPABILITIES: ServerCapabilities = {
  tools: { listChanged: true },
  resources: { listChanged: true, subscribe: true },
  prompts: { listChanged: true },
  completions: {},
  logging: {},
};

/**
 * `/mcp`: every tool, prompt and resource of a pair's MCPs, named `{mcp}__{name}` (resources also get
 * unique URIs, see `aggregatedUri`), with each registration's enable/disable filters on its tools.
 */
export function aggregateServer(registry: McpRegistry, scope: Scope, logger: Logger): Server {
  const server = new Server(GATEWAY_INFO, { capabilities: AGGREGATE_CAPABILITIES, jsonSchemaValidator: validator });

  /** Runs `fn` on every registration that has `capability`; one broken server must not hide the others. */
  const gather = async <T>(what: string, has: (r: Registration) => unknown, fn: (r: Registration) => Promise<T[]>): Promise<T[]> => {
    const regs = registry.list(scope).filter(has);
    const lists = await Promise.all(
      regs.map((reg) =>
        fn(reg).catch((err: unknown) => {
          logger.warn({ mcp: reg.spec.name, err: describeError(err) }, `aggregated ${what} skipped an mcp`);
          return [] as T[];
        }),
      ),
    );
    return lists.flat();
  };
  const byUri = (uri: string): { reg: Registration; uri: string } => {
    const parts = splitAggregatedUri(uri);
    const reg = parts && registry.list(scope).find((r) => r.spec.name === parts.mcp);
    if (!parts || !reg) throw new McpError(ErrorCode.InvalidParams, `Unknown resource: ${uri}`);
    return { reg, uri: parts.uri };
  };
  const byName = (name: string, kind: string): { reg: Registration; name: string } => {
    const regs = registry.list(scope);
    const hit = splitAggregatedName(regs.map((r) => r.spec.name), name)[0];
    const reg = hit && regs.find((r) => r.spec.name === hit.mcp);
    if (!hit || !reg) throw new McpError(ErrorCode.InvalidParams, `Unknown ${kind}: ${name}`);
    return { reg, name: hit.tool };
  };

  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: await gather<Tool>(
      'tools/list',
      (r) => r.upstream.capabilities.tools,
      async (reg) =>
        (await reg.upstream.listTools()).filter((t) => toolEnabled(reg.spec, t.name)).map((t) => ({ ...t, name: reg.spec.name + TOOL_SEPARATOR + t.name })),
    ),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const regs = new Map(registry.list(scope).map((r) => [r.spec.name, r]));
    for (const { mcp, tool } of splitAggregatedName([...regs.keys()], req.params.name)) {
      const reg = regs.get(mcp)!;
      if (!toolEnabled(reg.spec, tool)) continue;
      try {
        if (!(await reg.upstream.findTool(tool))) continue;
        return await callUpstream(reg.upstream, tool, req, extra);
      } catch (err) {
        return toolError(err);
      }
    }
    throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${req.params.name}`);
  });

  server.setRequestHandler(ListPromptsRequestSchema, async (_req, extra) => ({
    prompts: await gather<Prompt>(
      'prompts/list',
      (r) => r.upstream.capabilities.prompts,
      async (reg) =>
        (await allPages((cursor) => pass(reg.upstream, (c, o) => c.listPrompts(cursor === undefined ? undefined : { cursor }, o).then((p) => ({ ...p, items: p.prompts })), extra))).map(
          (p) => ({ ...p, name: reg.spec.name + TOOL_SEPARATOR + p.name }),
        ),
    ),
  }));
  server.setRequestHandler(GetPromptRequestSchema, async (req, extra) => {
    const { reg, name } = byName(req.params.name, 'prompt');
    return pass(reg.upstream, (c, o) => c.getPrompt({ ...req.params, name }, o), extra);
  });

  server.setRequestHandler(ListResourcesRequestSchema, async (_req, extra) => ({
    resources: await gather<Resource>(
      'resources/list',
      (r) => r.upstream.capabilities.resources,
      async (reg) =>
        (await allPages((cursor) => pass(reg.upstream, (c, o) => c.listResources(cursor === undefined ? undefined : { cursor }, o).then((p) => ({ ...p, items: p.resources })), extra))).map(
          (r) => ({ ...r, name: reg.spec.name + TOOL_SEPARATOR + r.name, uri: aggregatedUri(reg.spec.name, r.uri) }),
        ),
    ),
  }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async (_req, extra) => ({
    resourceTemplates: await gather<ResourceTemplate>(
      'resources/templates/list',
      (r) => r.upstream.capabilities.resources,
      async (reg) =>
        (
          await allPages((cursor) =>
            pass(reg.upstream, (c, o) => c.listResourceTemplates(cursor === undefined ? undefined : { cursor }, o).then((p) => ({ ...p, items: p.resourceTemplates })), extra),
          )
        ).map((t) => ({ ...t, name: reg.spec.name + TOOL_SEPARATOR + t.name, uriTemplate: aggregatedUri(reg.spec.name, t.uriTemplate) })),
    ),
  }));
  server.setRequestHandler(ReadResourceRequestSchema, async (req, extra) => {
    const { reg, uri } = byUri(req.params.uri);
    const result = await pass<ReadResourceResult>(reg.upstream, (c, o) => c.readResource({ ...req.params, uri }, o), extra);
    return { ...result, contents: result.contents.map((content) => ({ ...content, uri: aggregatedUri(reg.spec.name, content.uri) })) };
  });
  server.setRequestHandler(SubscribeRequestSchema, async (req, extra) => {
    const { reg, uri } = byUri(req.params.uri);
    return pass(reg.upstream, (c, o) => c.subscribeResource({ ...req.params, uri }, o), extra);
  });
  server.setRequestHandler(UnsubscribeRequestSchema, async (req, extra) => {
    const { reg, uri } = byUri(req.params.uri);
    return pass(reg.upstream, (c, o) => c.unsubscribeResource({ ...req.params, uri }, o), extra);
  });
  server.setRequestHandler(CompleteRequestSchema, async (req, extra) => {
    const ref = req.params.ref;
    const target = ref.type === 'ref/prompt' ? byName(ref.name, 'prompt') : byUri(ref.uri);
    const upstreamRef = ref.type === 'ref/prompt' ? { ...ref, name: (target as { name: string }).name } : { ...ref, uri: (target as { uri: string }).uri };
    return pass(target.reg.upstream, (c, o) => c.complete({ ...req.params, ref: upstreamRef }, o), extra);
  });
  return server;
}

/** An upstream notification as the aggregated view shows it (resource URIs rewritten). */
export function aggregatedNotification(mcp: string, n: ServerNotification): ServerNotification {
  if (n.method === 'notifications/resources/updated') return { ...n, params: { ...n.params, uri: aggregatedUri(mcp, n.params.uri) } };
  if (n.method === 'notifications/message') return { ...n, params: { ...n.params, logger: n.params.logger ?? mcp } };
  return n;
}

/** `/mcps/{name}/mcp`: one upstream as it is, its tools, resources, prompts and completions, names unchanged. */
export function forwardingServer(reg: Registration): Server {
  const up = reg.upstream;
  const has = up.capabilities;
  const capabilities: ServerCapabilities = {};
  if (has.tools) capabilities.tools = { listChanged: true };
  if (has.resources) capabilities.resources = { listChanged: true, ...(has.resources.subscribe ? { subscribe: true } : {}) };
  if (has.prompts) capabilities.prompts = { listChanged: true };
  if (has.completions) capabilities.completions = {};
  if (has.logging) capabilities.logging = {};
  const server = new Server(up.serverInfo, { capabilities, instructions: up.instructions, jsonSchemaValidator: validator });
  if (has.tools) {
    server.setRequestHandler(ListToolsRequestSchema, (req, extra) => pass(up, (c, o) => c.listTools(req.params, o), extra));
    server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
      try {
        return await callUpstream(up, req.params.name, req, extra);
      } catch (err) {
        if (err instanceof McpError) throw err;
        return toolError(err);
      }
    });
  }
  if (has.resources) {
    server.setRequestHandler(ListResourcesRequestSchema, (req, extra) => pass(up, (c, o) => c.listResources(req.params, o), extra));
    server.setRequestHandler(ListResourceTemplatesRequestSchema, (req, extra) => pass(up, (c, o) => c.listResourceTemplates(req.params, o), extra));
    server.setRequestHandler(ReadResourceRequestSchema, (req, extra) => pass(up, (c, o) => c.readResource(req.params, o), extra));
    if (has.resources.subscribe) {
      server.setRequestHandler(SubscribeRequestSchema, (req, extra) => pass(up, (c, o) => c.subscribeResource(req.params, o), extra));
      server.setRequestHandler(UnsubscribeRequestSchema, (req, extra) => pass(up, (c, o) => c.unsubscribeResource(req.params, o), extra));
    }
  }
  if (has.prompts) {
    server.setRequestHandler(ListPromptsRequestSchema, (req, extra) => pass(up, (c, o) => c.listPrompts(req.params, o), extra));
    server.setRequestHandler(GetPromptRequestSchema, (req, extra) => pass(up, (c, o) => c.getPrompt(req.params, o), extra));
  }
  if (has.completions) {
    server.setRequestHandler(CompleteRequestSchema, (req, extra) => pass(up, (c, o) => c.complete(req.params, o), extra));
  }
  return server;
}
