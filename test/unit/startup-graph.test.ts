import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/daemon.js';

interface Metafile {
  outputs: Record<string, { entryPoint?: string; inputs: Record<string, unknown>; imports: { path: string; kind: string; external?: boolean }[] }>;
}

interface Graph {
  inputs: string[];
  builtins: string[];
}

/** Everything reachable from `output` through static imports: the modules and the external ones (Node's). */
function staticGraph(meta: Metafile, output: string): Graph {
  const inputs = new Set<string>();
  const builtins = new Set<string>();
  const seen = new Set<string>();
  const visit = (o: string) => {
    if (seen.has(o)) return;
    seen.add(o);
    for (const input of Object.keys(meta.outputs[o]!.inputs)) inputs.add(input);
    for (const imp of meta.outputs[o]!.imports) {
      if (imp.kind !== 'import-statement' && imp.kind !== 'require-call') continue;
      if (imp.external) builtins.add(imp.path);
      else visit(imp.path);
    }
  };
  visit(output);
  return { inputs: [...inputs], builtins: [...builtins] };
}

const outputOf = (meta: Metafile, entry: string) => Object.keys(meta.outputs).find((o) => meta.outputs[o]!.entryPoint === entry)!;

/**
 * The daemon starts in two stages (src/main.ts, then src/run.ts once the ports listen). What each loads, in
 * the bundle `npm run build` makes (packaging/bundle.mjs): the first stage is everything reachable from the
 * entry through static imports; the second what is reachable from its chunk, before any request. The
 * executable's CommonJS bundles (packaging/bundle.mjs, bundleDaemonCjs) are checked for the same split.
 */
let stage1: Graph;
let stage2: Graph;
let sea: { stage1: Graph; stage2: Graph };
let out: string;

beforeAll(async () => {
  out = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-graph-'));
  const bundle = (await import(pathToFileURL(path.join(ROOT, 'packaging/bundle.mjs')).href)) as {
    bundleDaemon(dir: string): Promise<Metafile>;
    bundleDaemonCjs(dir: string): Promise<Metafile>;
    STAGE2_ID: string;
  };
  const meta = await bundle.bundleDaemon(path.join(out, 'esm'));
  stage1 = staticGraph(meta, outputOf(meta, 'src/main.ts'));
  stage2 = staticGraph(meta, outputOf(meta, 'src/run.ts'));
  const cjs = await bundle.bundleDaemonCjs(path.join(out, 'cjs'));
  sea = { stage1: staticGraph(cjs, outputOf(cjs, 'src/main.ts')), stage2: staticGraph(cjs, outputOf(cjs, 'src/run.ts')) };
  expect(sea.stage1.builtins).toContain(bundle.STAGE2_ID);
}, 60_000);

afterAll(() => rmSync(out, { recursive: true, force: true }));

const STAGE1 = ['src/config.ts', 'src/early.ts', 'src/health.ts', 'src/listen.ts', 'src/main.ts'];

describe('what the daemon runs before its ports listen (the first stage)', () => {
  it('is the flags, the listeners and the plain /health: none of our dependencies, not even pino', () => {
    expect(stage1.inputs.sort()).toEqual(STAGE1);
  });

  it('loads only node:http and node:net of Node (node:util, for the flags, is loaded by Node itself)', () => {
    expect(stage1.builtins.sort()).toEqual(['node:http', 'node:net', 'node:util']);
  });

  it('is the same in the executable, whose first stage requires its second apart', () => {
    expect(sea.stage1.inputs.sort()).toEqual(STAGE1);
    expect(sea.stage2.inputs).toContain('src/run.ts');
    expect(sea.stage2.inputs).not.toContain('src/main.ts');
  });
});

describe('what the daemon loads once its ports listen (the second stage)', () => {
  it('is its own start path, pino and the daemon\'s start, without the RPC stack, Hono, the MCP SDK or the native addons', () => {
    expect(stage2.inputs).toContain('src/server.ts');
    expect(stage2.inputs.some((i) => i.includes('node_modules/pino/'))).toBe(true);
    const deferred = stage2.inputs.filter((i) =>
      /node_modules\/(@bufbuild|@connectrpc|hono|@hono|@modelcontextprotocol|busboy|zod|ajv)\/|^src\/(gen|api|gateway|picod|portforward|services\/(filesystem|process\/(?!base64)))\//.test(i),
    );
    expect(deferred).toEqual([]);
  });

  it('leaves out the Node modules that only some requests need', () => {
    expect(stage2.builtins).toContain('node:fs');
    for (const late of ['node:http2', 'node:crypto', 'node:child_process', 'node-pty', 'fs-xattr', 'sandboxd-spawn']) expect(stage2.builtins).not.toContain(late);
  });
});
