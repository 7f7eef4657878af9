import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { watchJsonLog } from '../helpers/json-log.js';

/** What run.ts prepared: an unpacked image and how to start it (Dockerfile ENTRYPOINT + CMD, ENV, WORKDIR). */
export interface ImageManifest {
  rootfs: string;
  /** The Debian suite the image was built on. */
  base: string;
  argv: string[];
  env: Record<string, string>;
  workdir: string;
}

export const MANIFEST_ENV = 'SANDBOXD_IMAGE_MANIFEST';

export function readManifest(): ImageManifest {
  const file = process.env[MANIFEST_ENV];
  if (!file) throw new Error(`${MANIFEST_ENV} is not set: run the rootfs test with 'npm run test:image'`);
  return JSON.parse(readFileSync(file, 'utf8')) as ImageManifest;
}

export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/**
 * Runs inside the new namespaces, before the image's init: mounts what a container runtime mounts (proc
 * for the new PID namespace, a private devpts for PTYs, tmpfs on /dev/shm and /run), brings loopback up,
 * then chroots and execs ENTRYPOINT + CMD, which becomes PID 1. Every mount lives in the private mount
 * namespace and goes away with it.
 */
const LAUNCH = `set -e
root="$1"; workdir="$2"; shift 2
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$root/dev/pts"
mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=0755 run "$root/run"
hostname sandbox
ip link set lo up
exec chroot "$root" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"
`;

export interface RunningSandbox {
  /** The `unshare` process: its network namespace is the sandbox's. */
  holder: ChildProcess;
  /** The image's init (PID 1 inside), as seen from outside. */
  initPid: number;
  logs: Record<string, unknown>[];
  output: () => string;
  waitForLog(test: (rec: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the image in new network, mount, PID, UTS and IPC namespaces. */
export async function startSandbox(manifest: ImageManifest): Promise<RunningSandbox> {
  const holder = spawn(
    'unshare',
    ['--net', '--mount', '--pid', '--uts', '--ipc', '--fork', '--kill-child', '--propagation', 'private', '--', 'sh', '-c', LAUNCH, 'launch', manifest.rootfs, manifest.workdir, ...manifest.argv],
    { stdio: ['ignore', 'pipe', 'pipe'], env: manifest.env },
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => holder.once('exit', (code, signal) => resolve({ code, signal })));
  let output = '';
  holder.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const { logs, waitFor: waitForLog } = watchJsonLog(holder.stdout!, {
    onLine: (line) => (output += `${line}\n`),
    context: () => output,
    exited: exited.then(({ code, signal }) => `sandbox exited (${signal ?? code})`),
    timeoutMs: 20_000,
  });
  try {
    await waitForLog((r) => r.msg === 'envd face listening', 'envd face listening');
    const children = readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, 'utf8').trim().split(/\s+/);
    if (children.length !== 1 || !children[0]) throw new Error(`expected one child of unshare, found '${children.join(' ')}'`);
    return { holder, initPid: Number(children[0]), logs, output: () => output, waitForLog, exited };
  } catch (err) {
    holder.kill('SIGKILL'); // --kill-child takes the init and with it the namespaces
    throw err;
  }
}

/** A veth pair: `outside` stays in this network namespace, `inside` (named eth0) moves into the sandbox's. */
export function connectVeth(sandbox: RunningSandbox, outside: { name: string; cidr: string }, insideCidr: string): void {
  const pid = String(sandbox.holder.pid);
  run('ip', ['link', 'add', outside.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pid]);
  run('ip', ['addr', 'add', outside.cidr, 'dev', outside.name]);
  run('ip', ['link', 'set', outside.name, 'up']);
  run('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', 'addr', 'add', insideCidr, 'dev', 'eth0']);
  run('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', 'link', 'set', 'eth0', 'up']);
}

/**
 * Stops the sandbox: SIGTERM to its init (as `docker stop` does), SIGKILL after `graceMs`. When PID 1 of
 * the namespace dies the kernel kills everything left in it, and the network and mount namespaces (the
 * veth pair, every mount) go with their last process.
 */
export async function stopSandbox(sandbox: RunningSandbox, graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (sandbox.holder.exitCode !== null || sandbox.holder.signalCode !== null) return sandbox.exited;
  try {
    process.kill(sandbox.initPid, 'SIGTERM');
  } catch {
    // already gone
  }
  const timer = setTimeout(() => sandbox.holder.kill('SIGKILL'), graceMs);
  const result = await sandbox.exited;
  clearTimeout(timer);
  return result;
}

/** Deletes the outside end of the veth pair if it is still there (it normally dies with the sandbox). */
export function removeLink(name: string): void {
  if (spawnSync('ip', ['link', 'show', name]).status === 0) spawnSync('ip', ['link', 'del', name]);
}

/**
 * Shows a host file or directory read-only at `inside` in one running sandbox: the mount point is made and
 * the bind mount lives in that sandbox's own root and mount namespace alone. How a test gives a sandbox
 * tools the image leaves out, such as a Node and an npm-installed MCP server, without copying them.
 */
export function bindReadOnly(sandbox: RunningSandbox, host: string, inside: string): void {
  // The init's root as this host names it: the sandbox's rootfs, whatever is mounted there.
  const target = `/proc/${sandbox.initPid}/root${path.posix.resolve('/', inside)}`;
  const mountPoint = statSync(host).isDirectory() ? 'mkdir -p "$2"' : 'mkdir -p "$(dirname "$2")" && touch "$2"';
  run('nsenter', [`--mount=/proc/${sandbox.initPid}/ns/mnt`, '--', 'sh', '-c', `${mountPoint} && mount --bind -o ro "$1" "$2"`, 'bind', host, target]);
}
