#!/usr/bin/env node
// Builds the self-contained artefact: build/sandboxd/ runs with a plain `node build/sandboxd/main.js`.
//
//   build/sandboxd/main.js          entry (imports dist/main.js)
//   build/sandboxd/dist/main.js     every JS dependency bundled into one ES module (plus lazily loaded chunks)
//   build/sandboxd/package.json     name, version, and the native addons as production dependencies
//   build/sandboxd/node_modules/    only the native addons, with their compiled .node files
//
// The bundle keeps the repo's dist/ layout so code that finds files next to itself (main.ts reads
// ../package.json for --version) works unchanged.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import process from 'node:process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleDaemon } from './bundle.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Native addons and the files each needs at run time. A production dependency that ships compiled
 * code but is missing here fails the build, so a new addon cannot be silently left out.
 */
const NATIVE = {
  'node-pty': { files: ['package.json', 'LICENSE', 'lib/**/*.js', 'build/Release/pty.node'], skip: /\.test\.js$/ },
  'fs-xattr': { files: ['package.json', 'LICENSE', 'index.js', 'build/Release/xattr.node'] },
};

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

function parseArgs(argv) {
  let out = path.join(ROOT, 'build/sandboxd');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out' && argv[i + 1]) out = path.resolve(argv[++i]);
    else throw new Error(`unknown argument '${argv[i]}' (usage: package.mjs [--out <dir>])`);
  }
  return { out };
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

function copyNative(name, dir, out) {
  const spec = NATIVE[name];
  const patterns = spec.files.map(globToRegExp);
  const files = walk(dir).filter((f) => patterns.some((p) => p.test(f)) && !(spec.skip && spec.skip.test(f)));
  for (const file of spec.files.filter((f) => !f.includes('*'))) {
    if (!files.includes(file)) throw new Error(`${name}: '${file}' is missing in ${dir} (was the addon built? run npm ci)`);
  }
  const dest = path.join(out, 'node_modules', name);
  for (const f of files) {
    mkdirSync(path.dirname(path.join(dest, f)), { recursive: true });
    cpSync(path.join(dir, f), path.join(dest, f));
  }
  return { version: readJson(path.join(dir, 'package.json')).version, files: files.length };
}

function sizeOf(dir) {
  return walk(dir).reduce((sum, f) => sum + statSync(path.join(dir, f)).size, 0);
}

async function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const rootPkg = readJson(path.join(ROOT, 'package.json'));

  const natives = new Map();
  for (const [dir, name] of productionClosure()) {
    if (!isNative(dir)) continue;
    if (!NATIVE[name]) {
      throw new Error(`production dependency '${name}' ships native code; add it to NATIVE in packaging/package.mjs`);
    }
    if ([...natives.values()].some((d) => d !== dir && path.basename(d) === name)) {
      throw new Error(`two copies of native package '${name}' are installed; the artefact can hold only one`);
    }
    natives.set(name, dir);
  }

  rmSync(out, { recursive: true, force: true });
  mkdirSync(path.join(out, 'dist'), { recursive: true });

  await bundleDaemon(path.join(out, 'dist'), [...natives.keys()]);

  const dependencies = {};
  for (const [name, dir] of natives) dependencies[name] = copyNative(name, dir, out).version;

  writeFileSync(path.join(out, 'main.js'), "#!/usr/bin/env node\nimport './dist/main.js';\n", { mode: 0o755 });
  const pkg = {
    name: rootPkg.name,
    version: rootPkg.version,
    description: rootPkg.description,
    license: rootPkg.license,
    private: true,
    type: 'module',
    main: 'main.js',
    bin: { sandboxd: 'main.js' },
    engines: rootPkg.engines,
    dependencies,
  };
  writeFileSync(path.join(out, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);

  // Prove the artefact stands alone: run it from a directory outside the repo, loading every addon.
  const check = spawnSync(process.execPath, [path.join(out, 'main.js'), '--version'], { cwd: os.tmpdir(), encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } });
  if (check.status !== 0 || !check.stdout.includes(rootPkg.version)) {
    throw new Error(`packaged daemon failed '--version': ${check.stderr || check.stdout}`);
  }
  const loadAddons = [...natives.keys()].map((n) => `await import(${JSON.stringify(n)});`).join(' ');
  const addons = spawnSync(process.execPath, ['--input-type=module', '-e', loadAddons], { cwd: out, encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } });
  if (addons.status !== 0) throw new Error(`packaged native addons do not load: ${addons.stderr}`);

  const mib = (sizeOf(out) / 1024 / 1024).toFixed(1);
  process.stdout.write(`packaged ${check.stdout.trim()} into ${path.relative(process.cwd(), out) || out} (${mib} MiB; native: ${[...natives.keys()].join(', ') || 'none'})\n`);
}

main().catch((err) => {
  process.stderr.write(`package: ${err.message}\n`);
  process.exit(1);
});
