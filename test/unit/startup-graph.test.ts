import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/daemon.js';

interface Metafile {
  outputs: Record<string, { entryPoint?: string; inputs: Record<string, unknown>; imports: { path: string; kind: string; external?: boolean }[] }>;
}

/**
 * What the daemon loads before it answers its first /health: everything reachable from the entry through
 * static imports, in the bundle `npm run build` makes (packaging/bundle.mjs; the executable's CommonJS bundle
 * defers the same modules, as both follow the dynamic imports in src/).
 */
let atStart: { inputs: string[]; builtins: string[] };
let out: string;

beforeAll(async () => {
  out = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-graph-'));
  const { bundleDaemon } = (await import(pathToFileURL(path.join(ROOT, 'packaging/bundle.mjs')).href)) as { bundleDaemon(dir: string): Promise<Metafile> };
  const meta = await bundleDaemon(out);
  const entry = Object.keys(meta.outputs).find((o) => meta.outputs[o]!.entryPoint === 'src/main.ts')!;
  const inputs = new Set<string>();
  const builtins = new Set<string>();
  const seen = new Set<string>();
  const visit = (output: string) => {
    if (seen.has(output)) return;
    seen.add(output);
    for (const input of Object.keys(meta.outputs[output]!.inputs)) inputs.add(input);
    for (const imp of meta.outputs[output]!.imports) {
      if (imp.kind !== 'import-statement') continue;
      if (imp.external) builtins.add(imp.path);
      else visit(imp.path);
    }
  };
  visit(entry);
  atStart = { inputs: [...inputs], builtins: [...builtins] };
}, 60_000);

afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('what the daemon loads at start', () => {
  it('is its own start path, without the RPC stack, Hono, the MCP SDK or the native addons', () => {
    expect(atStart.inputs).toContain('src/server.ts');
    const deferred = atStart.inputs.filter((i) =>
      /node_modules\/(@bufbuild|@connectrpc|hono|@hono|@modelcontextprotocol|busboy|zod|ajv)\/|^src\/(gen|api|gateway|picod|portforward|services\/(filesystem|process\/(?!base64)))\//.test(i),
    );
    expect(deferred).toEqual([]);
  });

  it('leaves out the Node modules that only some requests need', () => {
    expect(atStart.builtins).toContain('node:http');
    for (const late of ['node:http2', 'node:crypto', 'node:child_process', 'node-pty', 'fs-xattr', 'sandboxd-spawn']) expect(atStart.builtins).not.toContain(late);
  });
});
