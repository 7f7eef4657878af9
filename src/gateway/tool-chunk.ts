import { randomUUID } from 'node:crypto';
import type { ChunkDialect } from './spec.js';

/*
 * AgentScope's ToolChunk, as `ToolChunk.model_dump(mode="json")` serialises it. Field order follows the
 * pydantic models (message/_block.py, tool/_response.py) so the JSON reads the same as the Python gateway's.
 */

export interface TextBlock {
  type: 'text';
  text: string;
  id: string;
  created_at: string;
  finished_at: null;
}

export interface Base64Source {
  type: 'base64';
  data: string;
  media_type: string;
}

export interface UrlSource {
  type: 'url';
  url: string;
  media_type: string;
}

export interface DataBlock {
  type: 'data';
  id: string;
  source: Base64Source | UrlSource;
  name: null;
  created_at: string;
  finished_at: null;
}

export interface ToolChunk {
  content: (TextBlock | DataBlock)[];
  state: 'running' | 'error';
  is_last: true;
  metadata: Record<string, never>;
  id: string;
}

/** The part of an MCP `CallToolResult` the conversion reads. */
export interface McpToolResult {
  content?: unknown[];
  structuredContent?: unknown;
  isError?: boolean;
}

export interface ChunkFactories {
  /** A fresh id (AgentScope: `uuid4().hex`). */
  newId(): string;
  /** The creation time (AgentScope: naive local `datetime.now().isoformat()`). */
  now(): string;
}

/** Local time as Python's `datetime.now().isoformat()` prints it (no zone, microseconds). */
export function localIsoTimestamp(d: Date = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}` +
    `.${p(d.getMilliseconds(), 3)}000`
  );
}

const defaults: ChunkFactories = {
  newId: () => randomUUID().replaceAll('-', ''),
  now: () => localIsoTimestamp(),
};

type Block = Record<string, unknown>;

/**
 * An embedded text resource becomes a text block holding the resource as indented JSON, the way
 * pydantic's `TextResourceContents.model_dump_json(indent=2)` writes it: declared fields first, `_meta`
 * as `meta`, and the MIME type as `mimeType` (mcp 1.x, AgentScope 2.0.10) or `mime_type` (mcp 2.x, 2.0.11).
 */
function textResourceJson(resource: Block, dialect: ChunkDialect): string {
  const { uri, mimeType, _meta, text, ...extra } = resource;
  const mimeKey = dialect === '2.0.10' ? 'mimeType' : 'mime_type';
  return JSON.stringify({ uri, [mimeKey]: mimeType ?? null, meta: _meta ?? null, text, ...extra }, null, 2);
}

/** `json.dumps(value, ensure_ascii=False)`: Python's default separators (`, ` and `: `). */
export function pythonJsonDumps(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pythonJsonDumps(v)}`).join(', ')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * A resource URI as pydantic's `AnyUrl` normalises it (WHATWG URL serialisation, as `new URL` does),
 * or undefined when it is not an absolute URL pydantic would accept.
 */
function normalisedUrl(uri: unknown): string | undefined {
  if (typeof uri !== 'string') return undefined;
  try {
    return new URL(uri).href;
  } catch {
    return undefined;
  }
}

/**
 * Converts an MCP tool result into the ToolChunk AgentScope's `MCPTool` builds, in the host's release's
 * dialect. Both: text stays text, images and audio become base64 data blocks, embedded text resources
 * become JSON text, blob resources are dropped. 2.0.10 also drops resource links. 2.0.11 turns a
 * resource link (or bare resource contents) into a data block with a `url` source (media type defaulting
 * to `application/octet-stream` for links), a URI it cannot parse into a text block saying so, and
 * appends `structuredContent` as JSON text when no text block came out.
 */
export function toolChunkFromResult(result: McpToolResult, dialect: ChunkDialect = '2.0.11', f: ChunkFactories = defaults): ToolChunk {
  const content: (TextBlock | DataBlock)[] = [];
  const text = (t: string): TextBlock => ({ type: 'text', text: t, id: f.newId(), created_at: f.now(), finished_at: null });
  const data = (source: Base64Source | UrlSource): DataBlock => ({ type: 'data', id: f.newId(), source, name: null, created_at: f.now(), finished_at: null });
  for (const item of result.content ?? []) {
    if (typeof item !== 'object' || item === null) continue;
    const block = item as Block;
    if (block.type === 'text' && typeof block.text === 'string') {
      content.push(text(block.text));
    } else if ((block.type === 'image' || block.type === 'audio') && typeof block.data === 'string') {
      content.push(data({ type: 'base64', data: block.data, media_type: String(block.mimeType ?? '') }));
    } else if (block.type === 'resource' && typeof block.resource === 'object' && block.resource !== null) {
      const resource = block.resource as Block;
      if (typeof resource.text === 'string') content.push(text(textResourceJson(resource, dialect)));
    } else if (dialect === '2.0.11' && (block.type === 'resource_link' || (block.type === undefined && 'uri' in block))) {
      const isLink = block.type === 'resource_link';
      const mime = typeof block.mimeType === 'string' && block.mimeType !== '' ? block.mimeType : undefined;
      const url = normalisedUrl(block.uri);
      if (url === undefined) content.push(text(`<unconvertible MCP resource URI: ${String(block.uri)}>`));
      else if (mime !== undefined || isLink) content.push(data({ type: 'url', url, media_type: mime ?? 'application/octet-stream' }));
    }
  }
  if (dialect === '2.0.11' && result.structuredContent !== undefined && result.structuredContent !== null && !content.some((b) => b.type === 'text')) {
    content.push(text(pythonJsonDumps(result.structuredContent)));
  }
  return { content, state: result.isError ? 'error' : 'running', is_last: true, metadata: {}, id: f.newId() };
}
