import { isDeepStrictEqual } from 'node:util';
import type { CallToolResult, ServerNotification, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../log.js';
import { describeError, GatewayError, quote } from './errors.js';
import { toolEnabled, type McpSpec } from './spec.js';
import { Upstream, type ForwardOptions } from './upstream.js';

/** Registrations are private to one (agent, session) pair. */
export interface Scope {
  agentId: string;
  sessionId: string;
}

export interface Registration {
  spec: McpSpec;
  upstream: Upstream;
}

/** What changed in a scope: a registration came or went, or one of its servers sent a notification. */
export type RegistryEvent =
  | { kind: 'registered' | 'removed'; scope: Scope; mcp: string }
  | { kind: 'notification'; scope: Scope; mcp: string; notification: ServerNotification };

/** Opens an upstream for a spec; the registry's only way to start servers (tests can swap it). */
export type UpstreamOpener = (spec: McpSpec, logger: Logger, runtimeHeaders?: Record<string, string>, signal?: AbortSignal) => Promise<Upstream>;

export const scopeKey = (s: Scope) => JSON.stringify([s.agentId, s.sessionId]);
const where = (s: Scope) => `agent=${quote(s.agentId)} session=${quote(s.sessionId)}`;

/**
 * The gateway's MCP servers, keyed by (agent_id, session_id, name). Two sessions registering the same
 * name get two independent servers; removing one never disturbs the other.
 */
export class McpRegistry {
  private readonly scopes = new Map<string, Map<string, Registration>>();
  /** Registrations still starting, so a concurrent duplicate is refused and shutdown can stop them. */
  private readonly connecting = new Map<string, { abort: AbortController; done: Promise<unknown>; spec: McpSpec; result: Promise<Registration> }>();
  private readonly listeners = new Set<(event: RegistryEvent) => void>();
  private closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly open: UpstreamOpener = (spec, log, headers, signal) => Upstream.open(spec, log, headers, signal),
  ) {}

  /** Follows every scope's changes; returns the function that stops following. */
  subscribe(listener: (event: RegistryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: RegistryEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.logger.warn({ err: describeError(err) }, 'gateway registry listener failed');
      }
    }
  }

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
   *
   * A start outlives the request that asked for it (AgentScope's host gives up after 30 s while a cold
   * `npx` install goes on): it is registered when it comes up, and the same spec posted again meanwhile
   * waits for that start instead of being refused. `DELETE` stops a start that is still under way.
   */
  async register(scope: Scope, spec: McpSpec, runtimeHeaders?: Record<string, string>): Promise<Registration> {
    if (this.closed) throw new GatewayError('upstream', 'the gateway is shutting down');
    const key = scopeKey(scope);
    const pendingKey = `${key}\0${spec.name}`;
    const pending = this.connecting.get(pendingKey);
    if (pending && isDeepStrictEqual(pending.spec.raw, spec.raw)) return pending.result;
    const existing = this.scopes.get(key)?.get(spec.name);
    if (pending || (existing && existing.upstream.failure === undefined)) {
      throw new GatewayError('conflict', `${quote(spec.name)} already exists for ${where(scope)}`);
    }
    const abort = new AbortController();
    const opening = (async () => {
      if (existing) await this.detach(key, spec.name)?.upstream.close();
      return this.open(spec, this.logger, runtimeHeaders, abort.signal);
    })();
    const result = this.finishRegistration(scope, spec, opening, abort.signal);
    this.connecting.set(pendingKey, { abort, done: opening.catch(() => undefined), spec, result });
    try {
      return await result;
    } finally {
      if (this.connecting.get(pendingKey)?.result === result) this.connecting.delete(pendingKey);
    }
  }

  private async finishRegistration(scope: Scope, spec: McpSpec, opening: Promise<Upstream>, aborted: AbortSignal): Promise<Registration> {
    let upstream: Upstream;
    try {
      upstream = await opening;
    } catch (err) {
      if (this.closed) throw new GatewayError('upstream', 'the gateway is shutting down');
      if (aborted.aborted) throw new GatewayError('upstream', `connect failed: ${quote(spec.name)} was removed while it was starting`);
      throw err instanceof GatewayError ? err : new GatewayError('upstream', `connect failed: ${describeError(err)}`);
    }
    if (this.closed || aborted.aborted) {
      await upstream.close();
      throw new GatewayError('upstream', this.closed ? 'the gateway is shutting down' : `connect failed: ${quote(spec.name)} was removed while it was starting`);
    }
    const reg: Registration = { spec, upstream };
    const key = scopeKey(scope);
    let byName = this.scopes.get(key);
    if (!byName) this.scopes.set(key, (byName = new Map()));
    byName.set(spec.name, reg);
    upstream.onNotification = (notification) => {
      if (this.scopes.get(key)?.get(spec.name) === reg) this.emit({ kind: 'notification', scope, mcp: spec.name, notification });
    };
    this.logger.info({ agentId: scope.agentId, sessionId: scope.sessionId, mcp: spec.name, pid: upstream.pid }, 'mcp registered');
    this.emit({ kind: 'registered', scope, mcp: spec.name });
    return reg;
  }

  /** Unregisters and stops the server (its whole process group, for stdio). */
  async remove(scope: Scope, name: string): Promise<void> {
    const starting = this.connecting.get(`${scopeKey(scope)}\0${name}`);
    if (starting && !this.scopes.get(scopeKey(scope))?.has(name)) {
      starting.abort.abort();
      await starting.done;
      this.logger.info({ agentId: scope.agentId, sessionId: scope.sessionId, mcp: name }, 'mcp start stopped');
      return;
    }
    this.get(scope, name);
    await this.detach(scopeKey(scope), name)?.upstream.close();
    this.logger.info({ agentId: scope.agentId, sessionId: scope.sessionId, mcp: name }, 'mcp removed');
    this.emit({ kind: 'removed', scope, mcp: name });
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

  /**
   * The upstream's tools, listed afresh and filtered by `enable_tools` / `disable_tools`, as AgentScope's
   * `MCPClient.list_raw_tools` answers them; a filtered-out tool can still be called by name, as there.
   */
  async listTools(scope: Scope, name: string): Promise<Tool[]> {
    const { spec, upstream } = this.get(scope, name);
    const tools = await upstreamCall(() => upstream.listTools());
    return tools.filter((t) => toolEnabled(spec, t.name));
  }

  /** Calls a tool by its upstream name; an unknown tool is `not_found`, as AgentScope's `get_tool` raises. */
  async callTool(scope: Scope, name: string, tool: string, args: Record<string, unknown>, opts: Omit<ForwardOptions, 'timeoutMs'> = {}): Promise<CallToolResult> {
    const { upstream } = this.get(scope, name);
    const found = await upstreamCall(() => upstream.findTool(tool));
    if (!found) throw new GatewayError('not_found', `Tool ${quote(tool)} not found in MCP server ${quote(name)}`);
    return upstreamCall(() => upstream.callTool(tool, args, undefined, opts));
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
