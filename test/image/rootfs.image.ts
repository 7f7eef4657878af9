import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandExitError, Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execStart, parseDockerfile } from './dockerfile.js';
import { connectVeth, readManifest, removeLink, startSandbox, stopSandbox, type RunningSandbox } from './sandbox.js';

// The image from Dockerfile.envd, started from its ENTRYPOINT + CMD in namespaces of its own and reached only
// over a veth pair on a documentation subnet (TEST-NET-2) inside this test's own network namespace.
const OUTSIDE_IP = '198.51.100.1';
const SANDBOX_IP = '198.51.100.2';
const OUTSIDE_LINK = 'sbxtest0';
const ENVD = `http://${SANDBOX_IP}:49983`;
const TOKEN = `image-test-${randomBytes(8).toString('hex')}`;

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const manifest = readManifest();

/** Retries `probe` until it returns a value (not undefined), at most `tries` times; the last value or error is reported. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, tries = 60, intervalMs = 250): Promise<T> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
      last = 'no result yet';
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${what}: gave up after ${tries} tries; last: ${last instanceof Error ? last.message : String(last)}`);
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text() };
}

function fetchErrorCode(err: unknown): string {
  const cause = (err as { cause?: { code?: string } }).cause;
  return cause?.code ?? (err as Error).name;
}

let sandbox: RunningSandbox;
/** The e2b SDK pointed at the veth address through its connection options, with the access token. */
let sdk: Sandbox;

beforeAll(async () => {
  sandbox = await startSandbox(manifest);
  connectVeth(sandbox, { name: OUTSIDE_LINK, cidr: `${OUTSIDE_IP}/24` }, `${SANDBOX_IP}/24`);
  await eventually('the daemon answers over the veth', async () => ((await get(`${ENVD}/health`)).status === 204 ? true : undefined));
  sdk = new Sandbox({ sandboxId: 'rootfs-image-test', envdVersion: '99.99.99', envdAccessToken: TOKEN, sandboxUrl: ENVD });
});

afterAll(async () => {
  if (sandbox) await stopSandbox(sandbox, 2_000);
  removeLink(OUTSIDE_LINK);
});

describe('the image', () => {
  it('runs the same artefact the same way in Dockerfile.envd and the systemd unit', () => {
    const runtime = parseDockerfile(readFileSync(path.join(REPO, 'Dockerfile.envd'), 'utf8')).at(-1)!;
    const unit = readFileSync(path.join(REPO, 'packaging/sandboxd.service'), 'utf8');
    expect(execStart(unit)).toEqual([...runtime.entrypoint.slice(2), ...runtime.cmd]);
    expect(manifest.argv).toEqual([...runtime.entrypoint, ...runtime.cmd]);
  });

  it('has an init as PID 1 that is the Dockerfile entrypoint', async () => {
    const comm = readFileSync(`/proc/${sandbox.initPid}/comm`, 'utf8').trim();
    expect(comm).toBe(path.basename(manifest.argv[0]!));
  });

  it('listens beyond loopback with port forwarding on', async () => {
    const listening = await sandbox.waitForLog((r) => r.msg === 'envd face listening', 'envd face listening');
    expect(listening.hosts).toEqual(['::']);
    await sandbox.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('port forwarding on'), 'port forwarding on');
  });
});

describe('the envd HTTP API over the veth', () => {
  it('answers GET /health with 204', async () => {
    expect(await get(`${ENVD}/health`)).toEqual({ status: 204, body: '' });
  });

  it('takes an access token from POST /init and then requires it', async () => {
    const init = await fetch(`${ENVD}/init`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ accessToken: TOKEN, envVars: { IMAGE_TEST: 'from-init' } }),
    });
    expect(init.status).toBe(204);
    expect((await get(`${ENVD}/envs`)).status).toBe(401);
    expect((await get(`${ENVD}/envs`, { 'X-Access-Token': 'wrong' })).status).toBe(401);
    const envs = await get(`${ENVD}/envs`, { 'X-Access-Token': TOKEN });
    expect(envs.status).toBe(200);
    expect(JSON.parse(envs.body)).toMatchObject({ IMAGE_TEST: 'from-init' });
    // Only the holder of the token may re-init.
    const takeover = await fetch(`${ENVD}/init`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ accessToken: 'someone-else' }) });
    expect(takeover.status).toBe(401);
  });
});

describe('the e2b SDK over the veth', () => {
  it(`runs the one executable without Node in the image (${manifest.base})`, async () => {
    expect((await sdk.commands.run('command -v node nodejs || echo none')).stdout).toBe('none\n');
    expect((await sdk.commands.run('/usr/local/bin/sandboxd --version')).stdout).toMatch(/^sandboxd \d+\.\d+\.\d+ \(Node v\d+\.\d+\.\d+\)\n$/);
  });

  it('writes its native addons to a private directory under /run', async () => {
    const r = await sdk.commands.run('stat -c "%a %U" /run/sandboxd/addons /run/sandboxd/addons/*', { user: 'root' });
    expect(r.stdout.trim().split('\n')).toEqual(['700 root', '700 root']);
  });

  it('round-trips a text file and a binary file as user, owned by user', async () => {
    await sdk.files.write('/home/user/notes/hello.txt', 'hello from outside\n', { user: 'user' });
    expect(await sdk.files.read('/home/user/notes/hello.txt', { user: 'user' })).toBe('hello from outside\n');

    const blob = randomBytes(3 * 1024 * 1024 + 17);
    await sdk.files.write('notes/blob.bin', new Blob([blob]), { user: 'user' });
    const back = Buffer.from(await sdk.files.read('/home/user/notes/blob.bin', { format: 'bytes', user: 'user' }));
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(blob).digest('hex'));

    const info = await sdk.files.getInfo('/home/user/notes/blob.bin', { user: 'user' });
    expect(info).toMatchObject({ size: blob.length, owner: 'user', group: 'user' });
    const names = (await sdk.files.list('/home/user/notes', { user: 'user' })).map((e) => e.name).sort();
    expect(names).toEqual(['blob.bin', 'hello.txt']);
  });

  it('runs a command as user, in its home, with the /init env', async () => {
    const r = await sdk.commands.run('echo "$(id -un) $(id -gn) $HOME $(pwd) $IMAGE_TEST"', { user: 'user' });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('user user /home/user /home/user from-init\n');
  });

  it('runs commands as user by default (the CMD says --user user) and lets user sudo, as E2B templates do', async () => {
    expect((await sdk.commands.run('id -un')).stdout).toBe('user\n');
    expect((await sdk.commands.run('sudo -n id -un')).stdout).toBe('root\n');
    expect((await sdk.commands.run('id -un', { user: 'root' })).stdout).toBe('root\n');
  });

  it('reports a failing command through the SDK error', async () => {
    const err = await sdk.commands.run('echo nope >&2; exit 3', { user: 'user' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandExitError);
    expect(err).toMatchObject({ exitCode: 3, stderr: 'nope\n' });
  });

  it('opens a PTY as user with a terminal of the asked size', async () => {
    let out = '';
    const dec = new TextDecoder();
    const pty = await sdk.pty.create({ cols: 91, rows: 27, user: 'user', onData: (d) => void (out += dec.decode(d, { stream: true })) });
    await sdk.pty.sendInput(pty.pid, new TextEncoder().encode('echo "who=$(id -un) tty=$(tty) size=$(stty size) sum=$((6*7))"; exit\n'));
    const r = await pty.wait();
    expect(r.exitCode).toBe(0);
    expect(out).toMatch(/who=user tty=\/dev\/pts\/\d+ size=27 91 sum=42/);
  });

  it('has the init reap orphaned processes (no zombies left behind)', async () => {
    // The shell exits at once; its background sleep is orphaned, reparented to PID 1, and must be reaped.
    const orphan = Number((await sdk.commands.run('sh -c "sleep 0.3 & echo \\$!"', { user: 'user' })).stdout.trim());
    expect(orphan).toBeGreaterThan(1);
    const state = await eventually('the orphan is reaped', async () => {
      const r = await sdk.commands.run(`if [ -e /proc/${orphan} ]; then grep '^State:' /proc/${orphan}/status; else echo gone; fi`);
      return r.stdout.trim() === 'gone' ? 'gone' : undefined;
    }, 40);
    expect(state).toBe('gone');
  });

  it('forwards a server that listens on 127.0.0.1:8000 inside to the veth address, and stops when it exits', async () => {
    // No Node in the image: a second sandboxd, loopback only, is the server.
    const server = await sdk.commands.run('exec /usr/local/bin/sandboxd --port 8000 --gateway-port 0 --host 127.0.0.1', { user: 'user', background: true });
    const res = await eventually('the forwarded port answers', async () => {
      const r = await get(`http://${SANDBOX_IP}:8000/health`);
      return r.status === 204 ? r : undefined;
    });
    expect(res.status).toBe(204);
    // The server really is bound to loopback only: nothing but the forward makes it reachable.
    const listen = await sdk.commands.run("grep -i ':1F40 00000000:0000 0A' /proc/net/tcp");
    expect(listen.stdout).toContain('0100007F:1F40');

    await server.kill();
    const refused = await eventually('the forward stops', async () => {
      try {
        await get(`http://${SANDBOX_IP}:8000/`);
        return undefined;
      } catch (err) {
        // Until the next scan notices, the relay may still accept and then drop the connection.
        const code = fetchErrorCode(err);
        return code === 'ECONNREFUSED' ? code : undefined;
      }
    });
    expect(refused).toBe('ECONNREFUSED');
  });
});

describe('shutdown', () => {
  it('SIGTERM to the init stops the daemon cleanly and ends the sandbox', async () => {
    const sleeper = await sdk.commands.run('sleep 600', { user: 'user', background: true });
    expect(sleeper.pid).toBeGreaterThan(0);
    const { code, signal } = await stopSandbox(sandbox, 15_000);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(sandbox.logs.some((r) => r.msg === 'shutting down' && r.signal === 'SIGTERM')).toBe(true);
  });
});
