import { gunzipSync } from 'node:zlib';
import { mkdtempSync, writeFileSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { Filesystem, FileType } from '../../src/gen/filesystem/filesystem_pb.js';
import { signatureFor } from '../../src/auth/signature.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startSdkDaemon } from '../helpers/sdk.js';
import type { Sandbox } from 'e2b';
import { FileNotFoundError } from 'e2b';

const basic = (user: string) => 'Basic ' + Buffer.from(`${user}:`).toString('base64');

describe('envd face without a token', () => {
  let d: RunningDaemon;
  let sandbox: Sandbox;
  beforeAll(async () => {
    ({ daemon: d, sandbox } = await startSdkDaemon());
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('answers /health with 204', async () => {
    const res = await fetch(`${d.url}/health`);
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
  });

  it('reports metrics with every field and sane values', async () => {
    const res = await fetch(`${d.url}/metrics`);
    expect(res.status).toBe(200);
    const m = (await res.json()) as Record<string, number>;
    for (const k of ['ts', 'cpu_count', 'cpu_used_pct', 'mem_total', 'mem_used', 'mem_cache', 'mem_total_mib', 'mem_used_mib', 'disk_used', 'disk_total']) {
      expect(typeof m[k], k).toBe('number');
    }
    expect(Math.abs(m.ts! - Date.now() / 1000)).toBeLessThan(60);
    expect(m.cpu_count).toBe(os.availableParallelism());
    expect(m.cpu_used_pct).toBeGreaterThanOrEqual(0);
    expect(m.cpu_used_pct).toBeLessThanOrEqual(100);
    expect(m.mem_used).toBeGreaterThan(0);
    expect(m.mem_used).toBeLessThanOrEqual(m.mem_total!);
    expect(m.mem_total_mib).toBe(Math.floor(m.mem_total! / 1024 / 1024));
    expect(m.disk_used).toBeLessThanOrEqual(m.disk_total!);
    expect(m.disk_total).toBeGreaterThan(0);
  });

  it('lets the SDK in debug mode stat /tmp', async () => {
    const info = await sandbox.files.getInfo('/tmp');
    expect(info.type).toBe('dir');
    expect(info.path).toBe('/tmp');
    expect(info.name).toBe('tmp');
    expect(info.owner).toBe('root');
    expect(info.permissions).toBe('dtrwxrwxrwx');
    expect(info.modifiedTime).toBeInstanceOf(Date);
  });

  it('gives the SDK a FileNotFoundError for a missing path', async () => {
    await expect(sandbox.files.getInfo('/definitely/not/here')).rejects.toBeInstanceOf(FileNotFoundError);
  });

  it('serves Stat over Connect JSON, Connect binary, gRPC-web and gRPC over h2c', async () => {
    const transports = {
      json: createConnectTransport({ baseUrl: d.url, httpVersion: '1.1', useBinaryFormat: false }),
      binary: createConnectTransport({ baseUrl: d.url, httpVersion: '1.1', useBinaryFormat: true }),
      grpcWeb: createGrpcWebTransport({ baseUrl: d.url, httpVersion: '1.1' }),
      grpc: createGrpcTransport({ baseUrl: d.url }),
      connectH2: createConnectTransport({ baseUrl: d.url, httpVersion: '2' }),
    };
    for (const [name, transport] of Object.entries(transports)) {
      const client = createClient(Filesystem, transport);
      const res = await client.stat({ path: '/tmp' });
      expect(res.entry?.type, name).toBe(FileType.DIRECTORY);
      expect(res.entry?.path, name).toBe('/tmp');
      const err = await client.stat({ path: '/no/such/path' }).catch((e: unknown) => e);
      expect(ConnectError.from(err).code, name).toBe(Code.NotFound);
    }
  });

  it('reports a symlink with its resolved target', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-'));
    writeFileSync(path.join(dir, 'real.txt'), 'abc');
    symlinkSync(path.join(dir, 'real.txt'), path.join(dir, 'link'));
    const info = await sandbox.files.getInfo(path.join(dir, 'link'));
    expect(info.type).toBe('file');
    expect(info.symlinkTarget).toBe(path.join(dir, 'real.txt'));
  });

  it('resolves ~ and relative paths against the user home', async () => {
    const client = createClient(Filesystem, createConnectTransport({ baseUrl: d.url, httpVersion: '1.1' }));
    expect((await client.stat({ path: '~' })).entry?.path).toBe(os.userInfo().homedir);
    expect((await client.stat({ path: '' })).entry?.path).toBe(os.userInfo().homedir);
    const err = await client.stat({ path: '~nobody/x' }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
  });

  it('rejects an unknown Basic-auth user as unauthenticated', async () => {
    const client = createClient(Filesystem, createConnectTransport({ baseUrl: d.url, httpVersion: '1.1' }));
    const err = await client.stat({ path: '/tmp' }, { headers: { authorization: basic('no-such-user-x') } }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
    expect(ConnectError.from(err).rawMessage).toContain('no-such-user-x');
    const res = await fetch(`${d.url}/files?path=/tmp/x`, { headers: { authorization: basic('no-such-user-x') } });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'unauthenticated' });
  });

  it('answers bad requests with 4xx and keeps serving', async () => {
    const post = (p: string, body: string, ct = 'application/json') =>
      fetch(`${d.url}${p}`, { method: 'POST', headers: { 'content-type': ct }, body });
    const malformed = await post('/filesystem.Filesystem/Stat', '{"path":');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { code: string }).code).toBe('invalid_argument');
    const wrongType = await post('/filesystem.Filesystem/Stat', '{"path": 42}');
    expect(wrongType.status).toBe(400);
    const unknownMethod = await post('/filesystem.Filesystem/Frobnicate', '{}');
    expect(unknownMethod.status).toBe(404);
    const unimplemented = await post('/process.Process/NoSuchThing', '{}');
    expect(unimplemented.status).toBe(404);
    const badInit = await post('/init', '{not json');
    expect(badInit.status).toBe(400);
    const badInitTypes = await post('/init', '{"envVars": "x"}');
    expect(badInitTypes.status).toBe(400);
    expect((await fetch(`${d.url}/health`)).status).toBe(204);
    const ok = await post('/filesystem.Filesystem/Stat', '{"path":"/tmp"}');
    expect(ok.status).toBe(200);
  });

  it('answers CORS preflights and exposes Connect headers', async () => {
    const pre = await fetch(`${d.url}/filesystem.Filesystem/Stat`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://example.test',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,connect-protocol-version',
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-methods')).toContain('POST');
    expect(pre.headers.get('access-control-allow-headers')).toContain('connect-protocol-version');
    const res = await fetch(`${d.url}/health`, { headers: { origin: 'https://example.test' } });
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-expose-headers')).toContain('Grpc-Status');
  });

  it('downloads files: 404 missing, 400 directory, gzip when asked', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-'));
    const file = path.join(dir, 'hello.txt');
    writeFileSync(file, 'hello world\n'.repeat(100));
    const plain = await fetch(`${d.url}/files?path=${encodeURIComponent(file)}`, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.status).toBe(200);
    expect(plain.headers.get('content-length')).toBe('1200');
    expect(plain.headers.get('content-disposition')).toBe('inline; filename=hello.txt');
    expect(await plain.text()).toBe('hello world\n'.repeat(100));

    const gz = await fetch(`${d.url}/files?path=${encodeURIComponent(file)}`, { headers: { 'accept-encoding': 'gzip' } });
    expect(gz.status).toBe(200);
    expect(gz.headers.get('content-encoding')).toBe('gzip');
    // fetch decodes gzip transparently; the raw bytes are checked via node:http below
    expect(await gz.text()).toBe('hello world\n'.repeat(100));
    const raw = await new Promise<Buffer>((resolve, reject) => {
      import('node:http').then(({ get }) =>
        get(`${d.url}/files?path=${encodeURIComponent(file)}`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
        }).on('error', reject),
      );
    });
    expect(gunzipSync(raw).toString()).toBe('hello world\n'.repeat(100));

    const missing = await fetch(`${d.url}/files?path=${encodeURIComponent(path.join(dir, 'nope'))}`);
    expect(missing.status).toBe(404);
    const isDir = await fetch(`${d.url}/files?path=${encodeURIComponent(dir)}`);
    expect(isDir.status).toBe(400);
    expect(((await isDir.json()) as { message: string }).message).toContain('is a directory');
  });
});

describe('envd face with an access token', () => {
  let d: RunningDaemon;
  const token = 'secret-token-1';
  let file: string;
  beforeAll(async () => {
    d = await startDaemon();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-'));
    file = path.join(dir, 'data.txt');
    writeFileSync(file, 'signed content');
  });
  afterAll(async () => {
    await d?.stop();
  });

  const init = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${d.url}/init`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const stat = (headers: Record<string, string>) =>
    fetch(`${d.url}/filesystem.Filesystem/Stat`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"path":"/tmp"}' });

  it('sets the token, env vars and defaults on the first /init', async () => {
    const res = await init({ accessToken: token, envVars: { FOO: 'bar' }, timestamp: new Date().toISOString() });
    expect(res.status).toBe(204);
    const envs = await fetch(`${d.url}/envs`, { headers: { 'x-access-token': token } });
    expect(await envs.json()).toMatchObject({ FOO: 'bar' });
  });

  it('requires the token on every route but health, init and signed /files', async () => {
    expect((await fetch(`${d.url}/health`)).status).toBe(204);
    expect((await stat({})).status).toBe(401);
    expect((await stat({ 'x-access-token': 'wrong' })).status).toBe(401);
    expect((await stat({ 'x-access-token': token })).status).toBe(200);
    expect((await fetch(`${d.url}/envs`)).status).toBe(401);
    expect((await fetch(`${d.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${d.url}/metrics`, { headers: { 'x-access-token': token } })).status).toBe(200);
    // a Connect client sees the 401 as unauthenticated
    const client = createClient(Filesystem, createConnectTransport({ baseUrl: d.url, httpVersion: '1.1' }));
    const err = await client.stat({ path: '/tmp' }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
    // /files without token or signature
    expect((await fetch(`${d.url}/files?path=${encodeURIComponent(file)}`)).status).toBe(401);
    expect((await fetch(`${d.url}/files?path=${encodeURIComponent(file)}`, { headers: { 'x-access-token': token } })).status).toBe(200);
  });

  it('accepts valid signatures and refuses tampered, expired and other-user ones', async () => {
    const url = (params: Record<string, string>) => `${d.url}/files?${new URLSearchParams({ path: file, ...params })}`;
    const sig = signatureFor(file, 'read', '', token);
    const ok = await fetch(url({ signature: sig }));
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('signed content');

    const future = Math.floor(Date.now() / 1000) + 60;
    expect((await fetch(url({ signature: signatureFor(file, 'read', '', token, future), signature_expiration: String(future) }))).status).toBe(200);

    const tampered = sig.slice(0, -2) + (sig.endsWith('A') ? 'BB' : 'AA');
    const bad = await fetch(url({ signature: tampered }));
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { message: string }).message).toBe('invalid signature');

    const past = Math.floor(Date.now() / 1000) - 10;
    const expired = await fetch(url({ signature: signatureFor(file, 'read', '', token, past), signature_expiration: String(past) }));
    expect(expired.status).toBe(401);
    expect(((await expired.json()) as { message: string }).message).toBe('signature is already expired');

    // signed for root but presented without the username, and a write signature used to read
    expect((await fetch(url({ signature: signatureFor(file, 'read', 'root', token) }))).status).toBe(401);
    expect((await fetch(url({ signature: signatureFor(file, 'read', 'root', token), username: 'root' }))).status).toBe(200);
    expect((await fetch(url({ signature: signatureFor(file, 'write', '', token) }))).status).toBe(401);
    expect((await fetch(url({ signature: sig, signature_expiration: 'soon' }))).status).toBe(400);
  });

  it('refuses a re-init with another token or none, accepts the same token', async () => {
    const other = await init({ accessToken: 'another-token' });
    expect(other.status).toBe(401);
    const none = await init({ envVars: { A: 'b' } });
    expect(none.status).toBe(401);
    expect((await stat({ 'x-access-token': 'another-token' })).status).toBe(401);
    const same = await init({ accessToken: token, defaultWorkdir: '/tmp', timestamp: new Date(Date.now() + 1).toISOString() });
    expect(same.status).toBe(204);
    const res = await stat({ 'x-access-token': token });
    expect(res.status).toBe(200);
  });
});
