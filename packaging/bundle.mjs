#!/usr/bin/env node
// Bundles the daemon into dist/main.js (every JS dependency inlined, native addons left external), with
// code loaded on first use (the gateway's MCP SDK) split into chunks beside it. `npm run build` writes dist/
// with it; packaging/package.mjs uses the same options for the artefact. One bundle loads in about half the
// time of ~150 separate modules, and the split keeps the unused chunk out of an idle daemon's memory.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Native addons: loaded from node_modules at run time, never bundled. */
export const NATIVE_ADDONS = ['node-pty', 'fs-xattr', 'sandboxd-spawn'];

const VERSION = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;

export async function bundleDaemon(outdir, external = NATIVE_ADDONS) {
  const result = await build({
    define: { __SANDBOXD_VERSION__: JSON.stringify(VERSION) },
    entryPoints: { main: path.join(ROOT, 'src/main.ts') },
    outdir,
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    tsconfig: path.join(ROOT, 'tsconfig.build.json'),
    external,
    // CommonJS dependencies call require() for Node built-ins; an ES module has no require of its own.
    banner: { js: "import { createRequire as __sandboxdCreateRequire } from 'node:module';\nconst require = __sandboxdCreateRequire(import.meta.url);" },
    legalComments: 'eof',
    minify: true,
    keepNames: true,
    charset: 'ascii',
    metafile: true,
    logLevel: 'warning',
  });
  return result.metafile;
}

/** What the executable's first stage requires its second stage by; packaging/sea-main.cjs answers it. */
export const STAGE2_ID = 'sandboxd-daemon';

/** In the first stage's bundle, src/main.ts's import of the second stage (src/run.ts) stays a require of STAGE2_ID. */
const stage2Apart = {
  name: 'sandboxd-stage2-apart',
  setup(b) {
    b.onResolve({ filter: /^\.\/run\.js$/ }, (args) =>
      args.importer === path.join(ROOT, 'src/main.ts') ? { path: STAGE2_ID, external: true } : undefined,
    );
  },
};

/**
 * The daemon as two CommonJS files for the single executable (packaging/package.mjs): `<outdir>/sandboxd.js`,
 * the first stage (src/main.ts: flags, the faces' ports, the plain /health), and `<outdir>/sandboxd-daemon.js`,
 * the rest (src/run.ts), which the first stage requires once its ports listen, so that compiling it comes after.
 * A SEA's main script cannot import chunks, so what loads on first use (the gateway's MCP SDK) stays inside
 * the second, wrapped by esbuild so that it is compiled and run only when first imported. The addons stay
 * external: the SEA entry resolves them from where it extracted them.
 */
export async function bundleDaemonCjs(outdir, external = NATIVE_ADDONS) {
  const result = await build({
    define: { __SANDBOXD_VERSION__: JSON.stringify(VERSION) },
    entryPoints: { sandboxd: path.join(ROOT, 'src/main.ts'), [STAGE2_ID]: path.join(ROOT, 'src/run.ts') },
    outdir,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    // import() of an external addon becomes require() too: a SEA main script has no module loader to import with.
    supported: { 'dynamic-import': false },
    tsconfig: path.join(ROOT, 'tsconfig.build.json'),
    external,
    plugins: [stage2Apart],
    legalComments: 'eof',
    minify: true,
    keepNames: true,
    charset: 'ascii',
    metafile: true,
    logLevel: 'warning',
  });
  return result.metafile;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? path.join(ROOT, 'dist');
  bundleDaemon(out).catch((err) => {
    process.stderr.write(`bundle: ${err.message}\n`);
    process.exit(1);
  });
}
