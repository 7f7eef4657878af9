import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../log.js';
import { describeError, GatewayError, quote } from './errors.js';
import type { McpSpec } from './spec.js';
import { Upstream } from './upstream.js';

/** Registrations are private to one (agent, session) pair. */
export interface Scope {
  agentId: string;
  sessionId: string;
}

export interface Registration {
  spec: McpSpec;
  upstream: Upstream;
}

/** Opens an upstream for a spec; the registry's only way to start servers (tests can swap it). */
export type UpstreamOpener = (spec: McpSpec, logger: Logger, runtimeHeaders?: Record<string, string>, signal?: AbortSignal) => Promise<Upstream>;

const scopeKey = (s: Scope) => JSON.stringify([s.agentId, s.sessionId]);
const where = (s: Scope) => `agent=${quote(s.agentId)} session=${quote(s.sessionId)}`;

/**
 * The gateway's MCP servers, keyed by (agent_id, session_id, name). Two sessions registering the same
 * name get two independent servers; removing one never disturbs the other.
 */
export class McpRegistry {
  private readonly scopes = new Map<string, Map<string, Registration>>();
  /** Registrations still starting, so a concurrent duplicate is refused and shutdown can stop them. */
  private readonly connecting = new Map<string, { abort: AbortController; done: Promise<unknown> }>();
  private closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly open: UpstreamOpener = (spec, log, headers, signal) => Upstream.open(spec, log, headers, signal),
  ) {}

  /** Registrations of a pair, in registration order. */
  list(scope: Scope): Registration[] {
    return [...(this.scopes.get(scopeKey(scope))?.values() ?? [])];
  }

  get(scope: Scope, name: string): Registration {
    const reg = this.scopes.get(scopeKey(scope))?.get(name);
    if (!reg) throw new GatewayError('not_found', `${quote(name)} not found for ${where(scope)}`);
    return reg;
  }

  /**
   * Starts the server and registers it once it answered its tool list. A name already taken is a
   * conflict, unless its server has died: then the new registration replaces it. `runtimeHeaders`
   * (streamable HTTP only) are in place before the handshake and never become part of the spec.
   */
  async register(scope: Scope, spec: McpSpec, runtimeHeaders?: Record<string, string>): Promise<Registration> {
    if (this.closed) throw new GatewayError('upstream', 'the gateway is shutting down');
    const key = scopeKey(scope);
    const pendingKey = `${key}\0${spec.name}`;
    const existing = this.scopes.get(key)?.get(spec.name);
    if (this.connecting.has(pendingKey) || (existing && existing.upstream.failure === undefined)) {
      throw new GatewayError('conflict', `${quote(spec.name)} already exists for ${where(scope)}`);
    }
    const abort = new AbortController();
    const opening = (async () => {
      if (existing) await this.detach(key, spec.name)?.upstream.close();
      return this.open(spec, this.logger, runtimeHeaders, abort.signal);
    })();
    this.connecting.set(pendingKey, { abort, done: opening.catch(() => undefined) });
    try {
      let upstream: Upstream;
      try {
        upstream = await opening;
      } catch (err) {
        if (this.closed) throw new GatewayError('upstream', 'the gateway is shutting down');
        throw err instanceof GatewayError ? err : new GatewayError('upstream', `connect failed: ${describeError(err)}`);
      }
      if (this.closed) {
        await upstream.close();
        throw new GatewayError('upstream', 'the gateway is shutting down');
      }
      const reg: Registration = { spec, upstream };
      let byName = this.scopes.get(key);
      if (!byName) this.scopes.set(key, (byName = new Map()));
      byName.set(spec.name, reg);
      this.logger.info({ agentId: scope.agentId, sessionId: scope.sessionId, mcp: spec.name, pid: upstream.pid }, 'mcp registered');
      return reg;
    } finally {
      this.connecting.delete(pendingKey);
    }
  }

  /** Unregisters and stops the server (its whole process group, for stdio). */
  async remove(scope: Scope, name: string): Promise<void> {
    this.get(scope, name);
    await this.detach(scopeKey(scope), name)?.upstream.close();
    this.logger.info({ agentId: scope.agentId, sessionId: scope.sessionId, mcp: name }, 'mcp removed');
  }

  private detach(key: string, name: string): Registration | undefined {
    const byName = this.scopes.get(key);
    const reg = byName?.get(name);
    byName?.delete(name);
    if (byName?.size === 0) this.scopes.delete(key);
    return reg;
  }

  /** Replaces the runtime headers of a live streamable HTTP registration. */
  setRuntimeHeaders(scope: Scope, name: string, headers: Record<string, string>): void {
    this.get(scope, name).upstream.setRuntimeHeaders(headers);
  }

  /** The upstream's tools, unfiltered (enable/disable apply to the aggregated view only). */
  async listTools(scope: Scope, name: string): Promise<Tool[]> {
    const { upstream } = this.get(scope, name);
    return upstreamCall(() => upstream.listTools());
  }

  /** Calls a tool by its upstream name; an unknown tool is `not_found`, as AgentScope's `get_tool` raises. */
  async callTool(scope: Scope, name: string, tool: string, args: Record<string, unknown>): Promise<CallToolResult> {
    const { upstream } = this.get(scope, name);
    const found = await upstreamCall(() => upstream.findTool(tool));
    if (!found) throw new GatewayError('not_found', `Tool ${quote(tool)} not found in MCP server ${quote(name)}`);
    return upstreamCall(() => upstream.callTool(tool, args));
  }

  /** Stops every server, those still starting included; later registrations are refused. */
  async closeAll(): Promise<void> {
    this.closed = true;
    const all = [...this.scopes.values()].flatMap((m) => [...m.values()]);
    this.scopes.clear();
    const starting = [...this.connecting.values()];
    for (const s of starting) s.abort.abort();
    await Promise.all([...all.map((r) => r.upstream.close()), ...starting.map((s) => s.done)]);
    if (all.length > 0) this.logger.info({ count: all.length }, 'mcp upstreams closed');
  }
}

/** Upstream failures become `GatewayError('upstream')` carrying the cause in words. */
async function upstreamCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw err instanceof GatewayError ? err : new GatewayError('upstream', describeError(err));
  }
}
