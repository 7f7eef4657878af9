import { describe, expect, it } from 'vitest';
import { localIsoTimestamp, toolChunkFromResult, type ChunkFactories } from '../../../src/gateway/tool-chunk.js';

/** Predictable ids and times so whole chunks can be compared. */
function counting(): ChunkFactories {
  let n = 0;
  return { newId: () => `id${++n}`, now: () => '2025-01-02T03:04:05.678000' };
}

describe('toolChunkFromResult for an AgentScope 2.0.10 host', () => {
  it('turns text content into text blocks with ids and a running state', () => {
    const chunk = toolChunkFromResult({ content: [{ type: 'text', text: 'Echo: hi' }] }, '2.0.10', counting());
    expect(chunk).toEqual({
      content: [{ type: 'text', text: 'Echo: hi', id: 'id1', created_at: '2025-01-02T03:04:05.678000', finished_at: null }],
      state: 'running',
      is_last: true,
      metadata: {},
      id: 'id2',
    });
    // Key order matches pydantic's dump, so the JSON reads like the Python gateway's.
    expect(Object.keys(chunk)).toEqual(['content', 'state', 'is_last', 'metadata', 'id']);
    expect(Object.keys(chunk.content[0]!)).toEqual(['type', 'text', 'id', 'created_at', 'finished_at']);
  });

  it('turns images and audio into base64 data blocks', () => {
    const chunk = toolChunkFromResult(
      {
        content: [
          { type: 'image', data: 'aW1n', mimeType: 'image/png' },
          { type: 'audio', data: 'YXVk', mimeType: 'audio/wav' },
        ],
      },
      '2.0.10',
      counting(),
    );
    expect(chunk.content).toEqual([
      { type: 'data', id: 'id1', source: { type: 'base64', data: 'aW1n', media_type: 'image/png' }, name: null, created_at: '2025-01-02T03:04:05.678000', finished_at: null },
      { type: 'data', id: 'id2', source: { type: 'base64', data: 'YXVk', media_type: 'audio/wav' }, name: null, created_at: '2025-01-02T03:04:05.678000', finished_at: null },
    ]);
  });

  it('marks an isError result as an error chunk', () => {
    const chunk = toolChunkFromResult({ content: [{ type: 'text', text: 'bad input' }], isError: true }, '2.0.10', counting());
    expect(chunk.state).toBe('error');
    expect(chunk.content[0]).toMatchObject({ type: 'text', text: 'bad input' });
  });

  it('renders an embedded text resource as indented JSON text', () => {
    const chunk = toolChunkFromResult(
      { content: [{ type: 'resource', resource: { uri: 'demo://r/1', mimeType: 'text/plain', text: 'hello' } }] },
      '2.0.10',
      counting(),
    );
    expect(chunk.content).toHaveLength(1);
    const block = chunk.content[0]!;
    expect(block.type).toBe('text');
    const text = (block as { text: string }).text;
    expect(text).toBe('{\n  "uri": "demo://r/1",\n  "mimeType": "text/plain",\n  "meta": null,\n  "text": "hello"\n}');
  });

  it('drops what AgentScope 2.0.10 drops: blob resources, resource links, structured content, unknown blocks', () => {
    const chunk = toolChunkFromResult(
      {
        content: [
          { type: 'resource', resource: { uri: 'demo://b', blob: 'AAAA' } },
          { type: 'resource_link', uri: 'demo://x', name: 'x' },
          { type: 'something-new', value: 1 },
          { type: 'text', text: 'kept' },
        ],
        structuredContent: { n: 1 },
      },
      '2.0.10',
      counting(),
    );
    expect(chunk.content.map((b) => b.type)).toEqual(['text']);
  });

  it('answers an empty content list with an empty chunk', () => {
    expect(toolChunkFromResult({}, '2.0.10', counting()).content).toEqual([]);
  });

  it('gives every block and chunk a distinct 32-hex id by default', () => {
    const chunk = toolChunkFromResult({ content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] });
    const ids = [...chunk.content.map((b) => b.id), chunk.id];
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(ids).size).toBe(3);
  });
});

describe('toolChunkFromResult for an AgentScope 2.0.11 host', () => {
  const at = '2025-01-02T03:04:05.678000';

  it('turns a resource link into a data block with a url source, defaulting its media type', () => {
    const chunk = toolChunkFromResult(
      {
        content: [
          { type: 'resource_link', uri: 'demo://resource/dynamic/text/2', name: 'Text 2', mimeType: 'text/plain' },
          { type: 'resource_link', uri: 'HTTPS://Example.COM', name: 'no type' },
        ],
      },
      '2.0.11',
      counting(),
    );
    expect(chunk.content).toEqual([
      { type: 'data', id: 'id1', source: { type: 'url', url: 'demo://resource/dynamic/text/2', media_type: 'text/plain' }, name: null, created_at: at, finished_at: null },
      { type: 'data', id: 'id2', source: { type: 'url', url: 'https://example.com/', media_type: 'application/octet-stream' }, name: null, created_at: at, finished_at: null },
    ]);
  });

  it('says so in a text block when a resource link has a URI that is not a URL', () => {
    const chunk = toolChunkFromResult({ content: [{ type: 'resource_link', uri: 'no scheme here', name: 'x' }] }, '2.0.11', counting());
    expect(chunk.content).toEqual([{ type: 'text', text: '<unconvertible MCP resource URI: no scheme here>', id: 'id1', created_at: at, finished_at: null }]);
  });

  it('appends structured content as JSON text only when no text block came out', () => {
    const structuredContent = { temperature: 33, conditions: 'Cloudy ☁', tags: ['a', 'b'], nested: { ok: true, none: null } };
    const alone = toolChunkFromResult({ content: [], structuredContent }, '2.0.11', counting());
    expect(alone.content).toEqual([
      { type: 'text', text: '{"temperature": 33, "conditions": "Cloudy ☁", "tags": ["a", "b"], "nested": {"ok": true, "none": null}}', id: 'id1', created_at: at, finished_at: null },
    ]);
    const withText = toolChunkFromResult({ content: [{ type: 'text', text: '{}' }], structuredContent }, '2.0.11', counting());
    expect(withText.content.map((b) => b.type)).toEqual(['text']);
  });

  it('writes an embedded text resource with mime_type, as mcp 2.x models dump it', () => {
    const chunk = toolChunkFromResult({ content: [{ type: 'resource', resource: { uri: 'demo://r/1', mimeType: 'text/plain', text: 'hello' } }] }, '2.0.11', counting());
    expect((chunk.content[0] as { text: string }).text).toBe('{\n  "uri": "demo://r/1",\n  "mime_type": "text/plain",\n  "meta": null,\n  "text": "hello"\n}');
  });

  it('still drops blob resources', () => {
    const chunk = toolChunkFromResult({ content: [{ type: 'resource', resource: { uri: 'demo://b', blob: 'AAAA' } }] }, '2.0.11', counting());
    expect(chunk.content).toEqual([]);
  });
});

describe('localIsoTimestamp', () => {
  it("prints local time like Python's datetime.now().isoformat()", () => {
    expect(localIsoTimestamp(new Date(2025, 0, 2, 3, 4, 5, 678))).toBe('2025-01-02T03:04:05.678000');
  });
});
