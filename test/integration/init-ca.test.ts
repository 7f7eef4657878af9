import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CommandExitError, type Sandbox } from 'e2b';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startSdkDaemon } from '../helpers/sdk.js';
import { scratchDir } from './files-support.js';

const BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const EXTRA_DIR = '/usr/local/share/ca-certificates';

const sha256 = (p: string): string => (existsSync(p) ? createHash('sha256').update(readFileSync(p)).digest('hex') : 'absent');

/** A CA and a server certificate for 127.0.0.1 signed by it, made with the openssl CLI. */
function makeCa(dir: string, name: string): { ca: string; key: string; cert: string } {
  const p = (f: string): string => path.join(dir, `${name}-${f}`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', `/CN=sandboxd test ${name}`], { stdio: 'pipe' });
  execFileSync('openssl', ['req', ...ec, '-keyout', p('srv.key'), '-out', p('srv.csr'), '-subj', '/CN=127.0.0.1'], { stdio: 'pipe' });
  writeFileSync(p('ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  execFileSync('openssl', ['x509', '-req', '-in', p('srv.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('srv.crt'), '-days', '2', '-extfile', p('ext')], { stdio: 'pipe' });
  return { ca: readFileSync(p('ca.crt'), 'utf8'), key: readFileSync(p('srv.key'), 'utf8'), cert: readFileSync(p('srv.crt'), 'utf8') };
}

/**
 * The daemon runs in a private mount namespace with tmpfs over the trust store (seeded with a copy
 * of this machine's bundle), so /init never touches the real one; commands it runs see the same.
 */
function privateTrustStoreWrap(dir: string): string[] | null {
  if (spawnSync('openssl', ['version']).status !== 0) {
    console.log('skipping caBundle tests: the openssl CLI (certificates, handshakes) is missing');
    return null;
  }
  if (!existsSync(path.dirname(BUNDLE)) || !existsSync(EXTRA_DIR)) {
    console.log(`skipping caBundle tests: ${path.dirname(BUNDLE)} or ${EXTRA_DIR} is missing here, and the test must not create them`);
    return null;
  }
  const seed = path.join(dir, 'seed.crt');
  writeFileSync(seed, existsSync(BUNDLE) ? readFileSync(BUNDLE) : '');
  const mount = [
    `mount -t tmpfs tmpfs ${path.dirname(BUNDLE)}`,
    `cp ${seed} ${BUNDLE}`,
    `mount -t tmpfs tmpfs ${EXTRA_DIR}`,
    // Proves the mounts are private before the daemon starts: the real bundle is still the seed.
    `cmp -s ${seed} ${BUNDLE}`,
  ].join(' && ');
  try {
    execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${mount} && true`], { stdio: 'pipe' });
  } catch (err) {
    console.log(`skipping caBundle tests: cannot mount a tmpfs in a private mount namespace (${(err as Error).message.split('\n')[0]})`);
    return null;
  }
  return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `${mount} && exec "$0" "$@"`];
}

describe('/init caBundle: the system trust store', () => {
  let daemon: RunningDaemon | undefined;
  let sandbox: Sandbox;
  let dir: string;
  let wrap: string[] | null;
  let realBundle: string;
  let realExtra: string;
  let first: ReturnType<typeof makeCa>;
  let second: ReturnType<typeof makeCa>;
  let server: tls.Server;
  let port: number;

  beforeAll(async () => {
    realBundle = sha256(BUNDLE);
    realExtra = sha256(path.join(EXTRA_DIR, 'e2b-ca.crt'));
    dir = scratchDir('ca');
    wrap = privateTrustStoreWrap(dir);
    if (!wrap) return;
    first = makeCa(dir, 'first');
    second = makeCa(dir, 'second');
    // One server, presenting the first CA's certificate; the second CA replaces the first later.
    // The client hangs up (s_client at the end of its stdin): a server hanging up first races its close_notify.
    server = tls.createServer({ key: first.key, cert: first.cert }, (socket) => {
      socket.on('error', () => undefined);
      socket.write('hello\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    ({ daemon, sandbox } = await startSdkDaemon({ wrap }));
  });
  afterAll(async () => {
    await daemon?.stop();
    server?.close();
    rmSync(dir, { recursive: true, force: true });
    // The machine's own trust store is untouched.
    expect(sha256(BUNDLE)).toBe(realBundle);
    expect(sha256(path.join(EXTRA_DIR, 'e2b-ca.crt'))).toBe(realExtra);
  });

  const init = (body: unknown): Promise<Response> =>
    fetch(`${daemon!.url}/init`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  /** Runs a shell command through the daemon (so inside its mount namespace); resolves to stdout, or the exit code when it fails. */
  const sh = async (cmd: string): Promise<string | number> => {
    try {
      return (await sandbox.commands.run(cmd, { user: 'root' })).stdout;
    } catch (err) {
      if (err instanceof CommandExitError) return err.exitCode;
      throw err;
    }
  };
  /** 'verified' when openssl's handshake verifies the server against the system trust store, else openssl's exit code. */
  const handshake = (): Promise<string | number> =>
    sh(`openssl s_client -connect 127.0.0.1:${port} -verify_return_error -brief </dev/null >/dev/null 2>&1 && echo verified`);
  const bundleHash = (): Promise<string | number> => sh(`sha256sum ${BUNDLE} ${EXTRA_DIR}/* 2>/dev/null; ls ${path.dirname(BUNDLE)}`);
  const copies = async (pem: string): Promise<number> => (await sh(`cat ${BUNDLE}`)).toString().split(pem.trim()).length - 1;

  it('makes a handshake with a server signed by that CA succeed, once, and keeps the CA for update-ca-certificates', async (ctx) => {
    if (!wrap) return ctx.skip();
    expect(await handshake()).not.toBe('verified\n');
    const res = await init({ caBundle: first.ca });
    expect(res.status).toBe(204);
    expect(await handshake()).toBe('verified\n');
    expect(await copies(first.ca)).toBe(1);
    expect(await sh(`cat ${EXTRA_DIR}/e2b-ca.crt`)).toBe(first.ca.trim() + '\n');
    // The rest of the bundle is still there.
    expect((await sh(`grep -c 'BEGIN CERTIFICATE' ${BUNDLE}`)).toString().trim()).toBe(String(readFileSync(BUNDLE, 'utf8').split('BEGIN CERTIFICATE').length));
  });

  it('is idempotent: the same bundle again changes nothing', async (ctx) => {
    if (!wrap) return ctx.skip();
    const before = await bundleHash();
    expect((await init({ caBundle: first.ca + '\n\n' })).status).toBe(204);
    expect(await bundleHash()).toBe(before);
    expect(await copies(first.ca)).toBe(1);
  });

  it('answers a bad PEM 204, as envd does, and leaves the trust store as it was', async (ctx) => {
    if (!wrap) return ctx.skip();
    const before = await bundleHash();
    const truncated = first.ca.slice(0, first.ca.length - 40);
    const garbled = first.ca.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!not base64!!!!!!');
    for (const bad of ['not a certificate', truncated, garbled, `${first.ca}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n`]) {
      expect((await init({ caBundle: bad })).status).toBe(204);
    }
    expect(await bundleHash()).toBe(before);
    await vi.waitFor(() => expect(daemon!.logs.filter((r) => typeof r.msg === 'string' && r.msg.startsWith('caBundle is not a PEM'))).toHaveLength(4));
    expect(await handshake()).toBe('verified\n');
  });

  it('answers 400 for a caBundle that is not a string', async (ctx) => {
    if (!wrap) return ctx.skip();
    const res = await init({ caBundle: 42 });
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('caBundle must be a string');
  });

  it('replaces the CA it installed before with a new one', async (ctx) => {
    if (!wrap) return ctx.skip();
    expect((await init({ caBundle: second.ca })).status).toBe(204);
    expect(await copies(first.ca)).toBe(0);
    expect(await copies(second.ca)).toBe(1);
    expect(await sh(`cat ${EXTRA_DIR}/e2b-ca.crt`)).toBe(second.ca.trim() + '\n');
    expect(await handshake()).not.toBe('verified\n');
  });

  it('still answers 204 when the trust store is read-only, and says so in the log', async (ctx) => {
    if (!wrap) return ctx.skip();
    expect(await sh(`mount -o remount,ro ${path.dirname(BUNDLE)} && mount -o remount,ro ${EXTRA_DIR} && echo ro`)).toBe('ro\n');
    try {
      const before = await bundleHash();
      expect((await init({ caBundle: first.ca })).status).toBe(204);
      expect(await bundleHash()).toBe(before);
      await vi.waitFor(() => expect(daemon!.logs.some((r) => r.msg === 'trust store is not writable; CA bundle not installed')).toBe(true));
    } finally {
      await sh(`mount -o remount,rw ${path.dirname(BUNDLE)} && mount -o remount,rw ${EXTRA_DIR}`);
    }
    // Writable again, the same PEM goes in.
    expect((await init({ caBundle: first.ca })).status).toBe(204);
    expect(await handshake()).toBe('verified\n');
  });

  it('accepts and ignores volumeMounts and lifecycleID (E2B infrastructure), refusing only wrong types', async (ctx) => {
    if (!wrap) return ctx.skip();
    const res = await init({ volumeMounts: [{ nfsTarget: '10.0.0.1:/vol', path: '/mnt/vol' }], lifecycleID: 'lc-1' });
    expect(res.status).toBe(204);
    expect(existsSync('/mnt/vol')).toBe(false);
    await vi.waitFor(() => expect(daemon!.logs.some((r) => r.msg === 'E2B infrastructure init fields ignored' && r.lifecycleID === 'lc-1')).toBe(true));
    expect((await init({ volumeMounts: { path: '/x' } })).status).toBe(400);
    expect((await init({ lifecycleID: 7 })).status).toBe(400);
  });

  it('accepts and ignores the freeze endpoints', async (ctx) => {
    if (!wrap) return ctx.skip();
    for (const route of ['/freeze?mode=hierarchy&maxWaitMs=100', '/unfreeze', '/fsfreeze', '/fsthaw']) {
      const res = await fetch(`${daemon!.url}${route}`, { method: 'POST' });
      expect(res.status, route).toBe(204);
    }
    expect(await sh('echo still writable > /tmp/sandboxd-fsfreeze-probe && cat /tmp/sandboxd-fsfreeze-probe && rm /tmp/sandboxd-fsfreeze-probe')).toBe('still writable\n');
  });
});
