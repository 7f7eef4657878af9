// `npm run test:image`: builds Dockerfile.envd's runtime stage without Docker and runs the rootfs test in it,
// on Debian bookworm (the Dockerfile's base) and again on trixie (SANDBOXD_TEST_SUITES picks).
//
//  1. debootstrap Debian (minbase), cached as a tar in /var/cache/sandboxd-test (SANDBOXD_TEST_CACHE)
//  2. the runtime stage's RUN lines in a chroot of it, cached as another tar keyed by those lines
//  3. unpack that into a scratch rootfs and apply the stage's COPY lines: the executable of `npm run package`
//  4. vitest runs test/image/*.image.ts (or the files given as arguments) inside a network namespace of its
//     own (so the "outside" end of each veth pair is private too); the tests start ENTRYPOINT + CMD in
//     further namespaces (rootfs.image.ts by hand; the others through the local E2B control plane)
//  5. everything is torn down: leftover processes in the rootfs, the scratch rootfs
//
// Bundled by esbuild into build/test-image/run.mjs and run from the repo root.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseDockerfile } from './dockerfile.js';
import { applyCopies, DEFAULT_CACHE_DIR, DEFAULT_MIRROR, ensureBaseRootfs, ensureImageLayer, OTHER_SUITE, SUITE, tarExtract } from './rootfs.js';
import type { Stage } from './dockerfile.js';
import { MANIFEST_ENV, type ImageManifest } from './sandbox.js';

const REPO = process.cwd();
const TOOLS: Record<string, string> = { debootstrap: 'debootstrap', chroot: 'coreutils', unshare: 'util-linux', nsenter: 'util-linux', ip: 'iproute2', tar: 'tar' };

function say(msg: string): void {
  process.stdout.write(`[test:image] ${msg}\n`);
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

function preflight(): void {
  if (!existsJson(path.join(REPO, 'package.json')) || !readFileSync(path.join(REPO, 'package.json'), 'utf8').includes('"name": "sandboxd"')) {
    throw new Error(`run from the sandboxd repo root (cwd is ${REPO})`);
  }
  if (process.getuid?.() !== 0) throw new Error('the rootfs test needs root (debootstrap, chroot, namespaces)');
  const missing = Object.entries(TOOLS).filter(([tool]) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  if (missing.length > 0) {
    throw new Error(`missing ${missing.map(([t]) => t).join(', ')}: apt-get install ${[...new Set(missing.map(([, p]) => p))].join(' ')}`);
  }
  if (!existsSync(path.join(REPO, 'build/sandboxd'))) throw new Error('build/sandboxd is missing: run npm run package first');
}

function existsJson(file: string): boolean {
  try {
    JSON.parse(readFileSync(file, 'utf8'));
    return true;
  } catch {
    return false;
  }
}

/** Processes whose root directory or command line is inside `rootfs`: only ones this run started. */
function processesIn(rootfs: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const root = readlinkSync(`/proc/${name}/root`);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (root === rootfs || root.startsWith(`${rootfs}/`) || cmdline.includes(rootfs)) out.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

function cleanup(scratch: string, rootfs: string): void {
  // The scratch dir, not just the rootfs: the control plane's sandboxes run on overlays beside it.
  for (const pid of processesIn(scratch)) {
    say(`killing leftover process ${pid}`);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  // Sandbox mounts live in namespaces that die with their processes; never delete through a live mount.
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(` ${rootfs}/`));
  if (mounts.length > 0) {
    say(`not deleting ${scratch}: still mounted:\n${mounts.join('\n')}`);
    return;
  }
  rmSync(scratch, { recursive: true, force: true });
}

async function main(): Promise<number> {
  const started = Date.now();
  preflight();
  const cacheDir = process.env.SANDBOXD_TEST_CACHE || DEFAULT_CACHE_DIR;
  const mirror = process.env.SANDBOXD_TEST_MIRROR || DEFAULT_MIRROR;
  mkdirSync(cacheDir, { recursive: true });
  const logFile = path.join(cacheDir, 'last-build.log');
  writeFileSync(logFile, '');

  const stages = parseDockerfile(readFileSync(path.join(REPO, 'Dockerfile.envd'), 'utf8'));
  const runtime = stages[stages.length - 1]!;
  if (runtime.base !== 'debian:bookworm-slim') {
    throw new Error(`Dockerfile.envd's runtime stage is FROM ${runtime.base}; the rootfs test reproduces debian:bookworm-slim only`);
  }

  // The Dockerfile's base, then the same RUN and COPY lines on a second base that is not bookworm: the one
  // executable must need nothing of bookworm's. SANDBOXD_TEST_SUITES=bookworm runs the first alone.
  const suites = (process.env.SANDBOXD_TEST_SUITES || `${SUITE},${OTHER_SUITE}`).split(',');

  // The production-mode Python suite uses test/python's venv; pip needs the network, which the tests' own
  // namespace does not have, so it is made (or found up to date) here.
  const t = Date.now();
  const venv = spawnSync('sh', [path.join(REPO, 'test/python/setup.sh')], { stdio: 'inherit' });
  if (venv.status !== 0) throw new Error('test/python/setup.sh failed: the Python venv for the production-mode suite is missing');
  say(`python venv ready in ${seconds(t)}`);

  let code = 0;
  for (const suite of suites) {
    code = (await testOnBase(suite, { cacheDir, mirror, logFile, runtime, stages })) || code;
  }
  say(`test:image took ${seconds(started)} in all`);
  return code;
}

interface BaseContext {
  cacheDir: string;
  mirror: string;
  logFile: string;
  runtime: Stage;
  stages: Stage[];
}

/** Builds (or takes from the cache) the image on the Debian `suite` and runs the rootfs test in it. */
async function testOnBase(suite: string, { cacheDir, mirror, logFile, runtime, stages }: BaseContext): Promise<number> {
  let t = Date.now();
  say(`${suite}: base rootfs in ${cacheDir} (debootstrap from ${mirror} when missing; log ${logFile})`);
  const base = await ensureBaseRootfs(cacheDir, mirror, logFile, suite);
  say(base.builtSeconds === undefined ? `base rootfs cached: ${base.tar}` : `debootstrap built ${base.tar} in ${base.builtSeconds.toFixed(1)} s`);

  t = Date.now();
  const layer = await ensureImageLayer(cacheDir, base.tar, runtime, logFile);
  say(layer.builtSeconds === undefined ? `image layer cached: ${layer.tar}` : `ran the Dockerfile's RUN lines into ${layer.tar} in ${layer.builtSeconds.toFixed(1)} s`);

  t = Date.now();
  const scratch = mkdtempSync('/var/tmp/sandboxd-image-');
  const rootfs = path.join(scratch, 'rootfs');
  const stop = (signal: NodeJS.Signals) => {
    cleanup(scratch, rootfs);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    mkdirSync(rootfs);
    await tarExtract(layer.tar, rootfs, logFile);
    applyCopies(rootfs, runtime, stages, REPO);
    const manifest: ImageManifest = {
      rootfs,
      base: suite,
      argv: [...runtime.entrypoint, ...runtime.cmd],
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOSTNAME: 'sandbox', HOME: '/root', ...runtime.env },
      workdir: runtime.workdir,
    };
    const manifestFile = path.join(scratch, 'image.json');
    writeFileSync(manifestFile, JSON.stringify(manifest, null, 2));
    say(`${suite}: rootfs assembled in ${seconds(t)}: ${rootfs}; starts ${manifest.argv.join(' ')}`);

    t = Date.now();
    const vitest = path.join(REPO, 'node_modules/.bin/vitest');
    const code = await new Promise<number>((resolve) => {
      const child = spawn('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', vitest, 'run', '--config', 'test/image/vitest.config.ts', ...process.argv.slice(2)], {
        stdio: 'inherit',
        env: { ...process.env, [MANIFEST_ENV]: manifestFile },
      });
      child.once('exit', (c, s) => resolve(c ?? (s ? 128 : 1)));
    });
    say(`${suite}: tests ran in ${seconds(t)}`);
    return code;
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
    cleanup(scratch, rootfs);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[test:image] ${(err as Error).message}\n`);
    process.exit(1);
  },
);
