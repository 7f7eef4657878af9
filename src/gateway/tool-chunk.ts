import { randomUUID } from 'node:crypto';

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

export interface DataBlock {
  type: 'data';
  id: string;
  source: Base64Source;
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
 * pydantic's `TextResourceContents.model_dump_json(indent=2)` writes it (declared fields first, `_meta` as `meta`).
 */
function textResourceJson(resource: Block): string {
  const { uri, mimeType, _meta, text, ...extra } = resource;
  return JSON.stringify({ uri, mimeType: mimeType ?? null, meta: _meta ?? null, text, ...extra }, null, 2);
}

/**
 * Converts an MCP tool result into the ToolChunk AgentScope's `MCPTool` builds: text stays text, images
 * and audio become base64 data blocks, embedded text resources become JSON text; anything else
 * (blob resources, resource links) is dropped, as AgentScope drops it.
 */
export function toolChunkFromResult(result: McpToolResult, f: ChunkFactories = defaults): ToolChunk {
  const content: (TextBlock | DataBlock)[] = [];
  const text = (t: string): TextBlock => ({ type: 'text', text: t, id: f.newId(), created_at: f.now(), finished_at: null });
  for (const item of result.content ?? []) {
    if (typeof item !== 'object' || item === null) continue;
    const block = item as Block;
    if (block.type === 'text' && typeof block.text === 'string') {
      content.push(text(block.text));
    } else if ((block.type === 'image' || block.type === 'audio') && typeof block.data === 'string') {
      content.push({
        type: 'data',
        id: f.newId(),
        source: { type: 'base64', data: block.data, media_type: String(block.mimeType ?? '') },
        name: null,
        created_at: f.now(),
        finished_at: null,
      });
    } else if (block.type === 'resource' && typeof block.resource === 'object' && block.resource !== null) {
      const resource = block.resource as Block;
      if (typeof resource.text === 'string') content.push(text(textResourceJson(resource)));
    }
  }
  return { content, state: result.isError ? 'error' : 'running', is_last: true, metadata: {}, id: f.newId() };
}
