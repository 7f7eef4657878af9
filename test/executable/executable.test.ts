// The single executable (build/sandboxd, `npm run package`) as shipped: what it says it is, where it puts its
// native addons, and how it fails when damaged. `npm run test:executable` packages it first; these need root
// (private mount namespaces for a read-only /tmp and noexec mounts).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT } from '../helpers/daemon.js';
import { watchJsonLog } from '../helpers/json-log.js';

const EXE = path.resolve(ROOT, process.env.SANDBOXD_EXECUTABLE || 'build/sandboxd');
const STAGE = path.join(path.dirname(EXE), 'sea');

let scratch: string;
/** A copy of EXE outside /tmp: the tests mount over /tmp, and a checkout may live there. */
let exe: string;

beforeAll(() => {
  if (!existsSync(EXE)) throw new Error(`${EXE} is missing: run npm run package (npm run test:executable does)`);
  if (process.getuid?.() !== 0) throw new Error('the executable tests need root (mount namespaces)');
  scratch = mkdtempSync('/var/tmp/sandboxd-exe-test-');
  exe = path.join(scratch, 'sandboxd');
  copyFileSync(EXE, exe);
  chmodSync(exe, 0o755);
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/**
 * Starts the executable, optionally in a private mount namespace prepared by `mounts` (shell lines), and
 * resolves once its envd face answers /health, with the stderr it printed.
 */
async function startExe(opts: { mounts?: string[]; env?: NodeJS.ProcessEnv; exe?: string } = {}) {
  const port = await freePort();
  const argv = [opts.exe ?? exe, '--port', String(port), '--gateway-port', '0', '--host', '127.0.0.1'];
  const [cmd, ...args] = opts.mounts
    ? ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', `set -e\n${opts.mounts.join('\n')}\nexec "$@"`, 'sh', ...argv]
    : argv;
  const child = spawn(cmd!, args, { env: { ...process.env, SANDBOXD_SEA_DEBUG: '1', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`exited with ${signal ?? code}: ${stderr}`)));
  const { waitFor } = watchJsonLog(child.stdout, { context: () => stderr, exited });
  try {
    await waitFor((r) => r.msg === 'envd face listening', 'envd face listening');
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    expect(res.status).toBe(204);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    stderr: () => stderr,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The addons' folder the entry reported (SANDBOXD_SEA_DEBUG). */
function addonDirOf(stderr: string): string {
  const m = /sandboxd: addons in (\S+)/.exec(stderr);
  if (!m) throw new Error(`no 'addons in' line in: ${stderr}`);
  return m[1]!;
}

function run(exe: string, args: string[]) {
  return spawnSync(exe, args, { encoding: 'utf8', timeout: 20_000, env: { ...process.env, SANDBOXD_ADDON_DIR: path.join(scratch, 'run-addons') } });
}

describe('the executable', () => {
  it('is one file that names its version and the Node inside', () => {
    expect(statSync(EXE).isFile()).toBe(true);
    const r = run(EXE, ['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^sandboxd \d+\.\d+\.\d+ \(Node v24\.\d+\.\d+\)\n$/);
  });

  it('starts from its code cache, not by compiling the bundle', async () => {
    const d = await startExe({ env: { SANDBOXD_ADDON_DIR: path.join(scratch, 'cache-check') } });
    await d.stop();
    // Both stages: the first (flags, ports, the plain /health) and the daemon it loads once it listens.
    expect(d.stderr()).toContain('sandboxd: code cache accepted (sandboxd)\n');
    expect(d.stderr()).toContain('sandboxd: code cache accepted (sandboxd-daemon)\n');
    // Nothing Node warns about at start (the entry reads zlib's CRC-32 from its binding, DEP0111 in docs only).
    expect(d.stderr()).not.toMatch(/Warning/);
  });
});

describe('the native addons', () => {
  it('go to a private 0700 directory under /run for root, content-addressed, never under /tmp', async () => {
    // A fresh /run and /var/lib in the namespace, and a /tmp nobody can write: the addons must not need it.
    const d = await startExe({ mounts: ['mount -t tmpfs -o mode=0755 tmpfs /run', 'mount -t tmpfs -o ro tmpfs /tmp'] });
    await d.stop();
    const dir = addonDirOf(d.stderr());
    expect(dir).toMatch(/^\/run\/sandboxd\/addons\/[0-9a-f]{16}$/);
  });

  it('skip a noexec mount for the next candidate (here /var/lib/sandboxd)', async () => {
    const d = await startExe({
      mounts: ['mount -t tmpfs -o mode=0755,noexec tmpfs /run', 'mount -t tmpfs -o ro,noexec tmpfs /tmp', 'mount -t tmpfs -o mode=0755 tmpfs /var/lib'],
    });
    await d.stop();
    expect(addonDirOf(d.stderr())).toMatch(/^\/var\/lib\/sandboxd\/addons\/[0-9a-f]{16}$/);
  });

  it('refuse a directory that others can write and say so when no candidate is left', async () => {
    const shared = path.join(scratch, 'shared');
    const r = spawnSync(
      'unshare',
      ['--mount', '--propagation', 'private', '--', 'sh', '-c', `mkdir -m 0777 ${shared} && mount -t tmpfs -o noexec tmpfs /run && mount -t tmpfs -o noexec tmpfs /var/lib && mount -t tmpfs -o ro tmpfs /tmp && exec "$@"`, 'sh', exe, '--port', '0', '--gateway-port', '0'],
      { encoding: 'utf8', timeout: 20_000, env: { ...process.env, SANDBOXD_ADDON_DIR: shared } },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('sandboxd: no private directory for the native addons (set SANDBOXD_ADDON_DIR)');
    expect(r.stderr).toContain(`${shared}: mode 777 lets others in (want 700)`);
    expect(r.stderr).toContain('/run/sandboxd/addons: on a noexec mount');
  });

  it('are written once when four daemons start at the same moment, and every one of them comes up', async () => {
    const dir = path.join(scratch, 'race');
    const daemons = await Promise.all(Array.from({ length: 4 }, () => startExe({ env: { SANDBOXD_ADDON_DIR: dir } })));
    await Promise.all(daemons.map((d) => d.stop()));
    const folders = readdirSync(dir);
    expect(folders).toHaveLength(1); // no temporary folder left behind
    expect(new Set(daemons.map((d) => addonDirOf(d.stderr())))).toEqual(new Set([path.join(dir, folders[0]!)]));
  });

  it('are written again when an extracted file was changed (its hash is checked before use)', async () => {
    const dir = path.join(scratch, 'tamper');
    const first = await startExe({ env: { SANDBOXD_ADDON_DIR: dir } });
    await first.stop();
    const folder = addonDirOf(first.stderr());
    const addon = path.join(folder, 'node_modules/fs-xattr/index.js');
    const good = readFileSync(addon);
    writeFileSync(addon, 'throw new Error("tampered")');
    const second = await startExe({ env: { SANDBOXD_ADDON_DIR: dir } });
    await second.stop();
    expect(readFileSync(addon)).toEqual(good);
  });
});

describe('a damaged executable', () => {
  /** A copy of the executable with one byte flipped in the middle of the embedded asset `name` (found by its text). */
  function flipped(name: string): string {
    const bad = path.join(scratch, `sandboxd-corrupt-${name}`);
    const exe = readFileSync(EXE);
    const bundle = readFileSync(path.join(STAGE, name));
    const at = exe.indexOf(bundle.subarray(0, 4096));
    expect(at).toBeGreaterThan(0);
    const off = at + Math.floor(bundle.length / 2);
    exe[off] = exe[off] === 0x41 ? 0x42 : 0x41;
    writeFileSync(bad, exe, { mode: 0o755 });
    return bad;
  }

  it('fails at start with one clear line and exit code 70 when its first stage was changed', () => {
    const r = run(flipped('sandboxd.cjs'), ['--version']);
    expect(r.status).toBe(70);
    expect(r.stderr).toBe("sandboxd: this executable is damaged (asset 'sandboxd.cjs' does not match its checksum); install build/sandboxd again\n");
  });

  it('ends with that line and exit code 70 when its second stage was changed (checked when the first asks for it, once listening)', async () => {
    const port = await freePort();
    const r = run(flipped('sandboxd-daemon.cjs'), ['--port', String(port), '--gateway-port', '0', '--host', '127.0.0.1']);
    expect(r.status).toBe(70);
    expect(r.stderr).toBe("sandboxd: this executable is damaged (asset 'sandboxd-daemon.cjs' does not match its checksum); install build/sandboxd again\n");
  });

  it('that was cut short dies at exec by a signal instead of running (systemd does not restart on it)', () => {
    const cut = path.join(scratch, 'sandboxd-truncated');
    copyFileSync(EXE, cut);
    truncateSync(cut, Math.floor(statSync(EXE).size * 0.99));
    const r = run(cut, ['--version']);
    expect(r.status).toBe(null);
    expect(r.signal).toBe('SIGBUS');
    const unit = readFileSync(path.join(ROOT, 'packaging/sandboxd.service'), 'utf8');
    expect(unit).toMatch(/^RestartPreventExitStatus=70 SIGBUS$/m);
  });
});

describe('os.tmpdir() as the last candidate', () => {
  it('is used only when it is private to us', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-tmpdir-'));
    try {
      const d = await startExe({
        mounts: ['mount -t tmpfs -o noexec tmpfs /run', 'mount -t tmpfs -o noexec tmpfs /var/lib'],
        env: { TMPDIR: tmp },
      });
      await d.stop();
      expect(addonDirOf(d.stderr())).toMatch(new RegExp(`^${tmp}/sandboxd-0/[0-9a-f]{16}$`));
      expect(statSync(path.join(tmp, 'sandboxd-0')).mode & 0o777).toBe(0o700);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
