import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Stage } from './dockerfile.js';

/** What debootstrap builds: Debian bookworm, minbase (essential packages and apt), the closest to bookworm-slim. */
export const SUITE = 'bookworm';
/**
 * A second base that is not the Dockerfile's, to prove the single executable needs nothing of bookworm's
 * (the release after it, with a newer glibc and libstdc++).
 */
export const OTHER_SUITE = 'trixie';
export const VARIANT = 'minbase';

export const DEFAULT_CACHE_DIR = '/var/cache/sandboxd-test';
export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

const CHROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Runs a command, its output going to `logFile`; rejects with the log's tail when it fails. */
export function runLogged(cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) => {
    const log = createWriteStream(logFile, { flags: 'a' });
    log.write(`\n$ ${cmd} ${args.join(' ')}\n`);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      log.end(() => {
        if (code === 0) return resolve();
        const tail = readFileSync(logFile, 'utf8').split('\n').slice(-25).join('\n');
        reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')} ... failed (${signal ?? `exit ${code}`}); log ${logFile}:\n${tail}`));
      });
    });
  });
}

function tarCreate(dir: string, tarFile: string, logFile: string): Promise<void> {
  return runLogged('tar', ['--numeric-owner', '--xattrs', '-C', dir, '-cf', tarFile, '.'], logFile);
}

export async function tarExtract(tarFile: string, dir: string, logFile: string): Promise<void> {
  await runLogged('tar', ['--numeric-owner', '--xattrs', '-C', dir, '-xpf', tarFile], logFile);
  chmodSync(dir, 0o755);
}

/** Writes `tarFile` from a scratch folder via a temporary name, so a half-made cache file never exists. */
async function buildTar(tarFile: string, logFile: string, fill: (dir: string) => Promise<void>): Promise<void> {
  const scratch = mkdtempSync(`${tarFile}.build-`);
  chmodSync(scratch, 0o755); // it becomes the image's /, which every user must be able to enter
  try {
    await fill(scratch);
    await tarCreate(scratch, `${tarFile}.tmp`, logFile);
    renameSync(`${tarFile}.tmp`, tarFile);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    rmSync(`${tarFile}.tmp`, { force: true });
  }
}

/** The debootstrapped Debian `suite`, cached as a tar; built (network, minutes) only when missing. */
export async function ensureBaseRootfs(cacheDir: string, mirror: string, logFile: string, suite = SUITE): Promise<{ tar: string; builtSeconds?: number }> {
  mkdirSync(cacheDir, { recursive: true });
  const tar = path.join(cacheDir, `rootfs-${suite}-${VARIANT}.tar`);
  if (existsSync(tar)) return { tar };
  const started = Date.now();
  await buildTar(tar, logFile, (dir) => runLogged('debootstrap', [`--variant=${VARIANT}`, suite, dir, mirror], logFile));
  return { tar, builtSeconds: (Date.now() - started) / 1000 };
}

/**
 * Runs `command` with /bin/sh inside `dir` as Docker's RUN would: chrooted, /proc and a private devpts
 * mounted in a mount namespace of its own (gone when the command ends), the host's DNS for apt.
 */
function runInChroot(dir: string, command: string, logFile: string): Promise<void> {
  const setup = 'mount -t proc proc "$1/proc" && mount -t devpts -o newinstance,ptmxmode=0666 devpts "$1/dev/pts" && exec chroot "$1" /bin/sh -c "$2"';
  return runLogged('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', setup, 'sh', dir, command], logFile, {
    PATH: CHROOT_PATH,
    HOME: '/root',
    LANG: 'C.UTF-8',
    DEBIAN_FRONTEND: 'noninteractive',
  });
}

/**
 * The base plus the Dockerfile stage's RUN lines (apt-get, useradd), cached as a tar keyed by those lines,
 * like a Docker layer; older layers are pruned when a new one is made.
 */
export async function ensureImageLayer(cacheDir: string, baseTar: string, stage: Stage, logFile: string): Promise<{ tar: string; builtSeconds?: number }> {
  const base = statSync(baseTar);
  const key = createHash('sha256')
    .update(JSON.stringify({ base: path.basename(baseTar), size: base.size, mtime: base.mtimeMs, runs: stage.runs }))
    .digest('hex')
    .slice(0, 16);
  // Named after its base, so the layers of two bases are cached side by side.
  const stem = path.basename(baseTar, '.tar').replace(/^rootfs-/, '').replace(new RegExp(`-${VARIANT}$`), '');
  const prefix = stem === SUITE ? 'image' : `image-${stem}`;
  const tar = path.join(cacheDir, `${prefix}-${key}.tar`);
  if (existsSync(tar)) return { tar };
  const started = Date.now();
  await buildTar(tar, logFile, async (dir) => {
    await tarExtract(baseTar, dir, logFile);
    cpSync('/etc/resolv.conf', path.join(dir, 'etc/resolv.conf'), { dereference: true });
    for (const run of stage.runs) await runInChroot(dir, run, logFile);
    // The host's resolver has no business in the image (a container runtime writes its own).
    writeFileSync(path.join(dir, 'etc/resolv.conf'), '');
  });
  for (const f of readdirSync(cacheDir)) {
    if (new RegExp(`^${prefix}-[0-9a-f]{16}\\.tar$`).test(f) && f !== path.basename(tar)) rmSync(path.join(cacheDir, f), { force: true });
  }
  return { tar, builtSeconds: (Date.now() - started) / 1000 };
}

/**
 * Where the runtime stage's COPY --from=<build> sources come from without Docker: paths under the build
 * stage's WORKDIR are the repo (where `npm run package` just ran), and the build image's Node binary is the
 * Node running this script (the same major line, built for the same glibc as bookworm).
 */
export function hostSourceFor(source: string, build: Stage, repoRoot: string): string {
  const workdir = build.workdir.replace(/\/$/, '');
  if (source.startsWith(`${workdir}/`)) return path.join(repoRoot, source.slice(workdir.length + 1));
  if (source === '/usr/local/bin/node') return process.execPath;
  throw new Error(`the rootfs test cannot provide COPY --from=${build.name} ${source}`);
}

/** Applies the stage's COPY lines and what a container runtime adds at start (/etc/hosts, hostname). */
export function applyCopies(rootfs: string, stage: Stage, stages: Stage[], repoRoot: string): void {
  for (const copy of stage.copies) {
    const from = stages.find((s) => s.name === copy.from);
    if (!from) throw new Error(`COPY without --from=<stage> is not supported by the rootfs test (${copy.sources.join(' ')})`);
    for (const source of copy.sources) {
      const host = hostSourceFor(source, from, repoRoot);
      if (!existsSync(host)) throw new Error(`COPY source ${source} maps to ${host}, which does not exist (did npm run package run?)`);
      const dest = path.join(rootfs, copy.dest);
      mkdirSync(path.dirname(dest), { recursive: true });
      cpSync(host, dest, { recursive: true, dereference: true, preserveTimestamps: true });
    }
  }
  writeFileSync(path.join(rootfs, 'etc/hostname'), 'sandbox\n');
  writeFileSync(path.join(rootfs, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tsandbox\n');
}
