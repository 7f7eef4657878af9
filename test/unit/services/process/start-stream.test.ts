import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { Process, StartRequestSchema, StartResponseSchema, type StartRequest, type StartResponse } from '../../../../src/gen/process/process_pb.js';
import { STRICT_TEXT_DECODER } from '../../../../src/api/json-body.js';
import type { StartCall } from '../../../../src/services/process/start.js';
import { startStreamHandler } from '../../../../src/services/process/start-stream.js';
import { LeanBesideConnect, type Answer } from '../lean-support.js';

const jsonOptions = { ignoreUnknownFields: true, textDecoder: STRICT_TEXT_DECODER };

/** What the implementation saw of its last call. */
const seen: { signal?: AbortSignal; timeoutMs?: number; keepalive?: string | null; user?: string | null } = {};

/** A scripted Start: the command names what it does. */
async function* impl(req: StartRequest, call: StartCall): AsyncGenerator<StartResponse> {
  seen.signal = call.signal;
  seen.timeoutMs = call.timeoutMs();
  seen.keepalive = call.requestHeader.get('Keepalive-Ping-Interval');
  seen.user = call.requestHeader.get('authorization');
  const cmd = req.process?.cmd;
  if (cmd === 'refuse') throw new ConnectError(`error starting process '${cmd}': no`, Code.InvalidArgument);
  yield create(StartResponseSchema, { event: { event: { case: 'start', value: { pid: 42 } } } });
  if (cmd === 'crash') throw new Error('a bug');
  if (cmd === 'wait') {
    await new Promise((resolve) => call.signal.addEventListener('abort', resolve, { once: true }));
    throw ConnectError.from(call.signal.reason);
  }
  if (cmd === 'big') {
    for (let i = 0; i < 16; i++) {
      yield create(StartResponseSchema, { event: { event: { case: 'data', value: { output: { case: 'stdout', value: new Uint8Array(256 * 1024).fill(i) } } } } });
    }
  }
  yield create(StartResponseSchema, { event: { event: { case: 'data', value: { output: { case: 'stdout', value: new TextEncoder().encode(`${cmd}\n`) } } } } });
  yield create(StartResponseSchema, { event: { event: { case: 'end', value: { exitCode: 0, exited: true, status: 'exit status 0' } } } });
}

function envelope(payload: Uint8Array | string, flags = 0): Buffer {
  const data = Buffer.from(payload);
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

const SDK_HEADERS = {
  authorization: `Basic ${Buffer.from('user:').toString('base64')}`,
  'connect-protocol-version': '1',
  'connect-timeout-ms': '60000',
  'keepalive-ping-interval': '50',
  'accept-encoding': 'gzip, deflate',
};
const json = (cmd: string) => envelope(JSON.stringify({ process: { cmd, args: ['-l', '-c', 'true'] }, stdin: false }));

const both = new LeanBesideConnect();
const START = 'process.Process/Start';
const post = (body: Buffer, headers: Record<string, string>) => both.post(START, body, headers);
const bothWays = (body: Buffer, headers: Record<string, string>, type = 'application/connect+json') => both.bothWays(START, body, headers, type);

beforeAll(async () => {
  const rpc = connectNodeAdapter({ routes: (r) => r.service(Process, { start: impl }), jsonOptions });
  await both.start(startStreamHandler(impl, jsonOptions), rpc);
});

afterAll(() => both.close());

describe('Start as the SDKs call it, served without connect-node', () => {
  it('answers a command byte for byte as connect-node does, in JSON', async () => {
    const [lean, viaConnect] = await bothWays(json('/bin/bash'), SDK_HEADERS);
    expect(lean.status).toBe(200);
    expect(lean.headers['content-type']).toBe('application/connect+json');
    expect(lean.body.toString()).toContain('"pid":42');
    expect(lean).toEqual(viaConnect);
  });

  it('answers a binary request byte for byte as connect-node does', async () => {
    const body = envelope(toBinary(StartRequestSchema, create(StartRequestSchema, { process: { cmd: 'echo' } })));
    const lean = await post(body, { ...SDK_HEADERS, 'content-type': 'application/connect+proto' });
    // connect-node alone takes the same request with a compression it may use but does not need here.
    const viaConnect = await post(body, { ...SDK_HEADERS, 'content-type': 'application/connect+proto', 'connect-accept-encoding': 'gzip' });
    expect(lean.headers['content-type']).toBe('application/connect+proto');
    // connect-node announces the encoding it may use; its messages here are below the size it compresses.
    const { 'connect-content-encoding': announced, ...headers } = viaConnect.headers;
    expect(announced).toBe('gzip');
    expect(lean).toEqual({ ...viaConnect, headers });
  });

  it('gives the call its headers, its deadline and a live signal', async () => {
    await post(json('echo'), { ...SDK_HEADERS, 'content-type': 'application/connect+json' });
    expect(seen.keepalive).toBe('50');
    expect(seen.user).toBe(SDK_HEADERS.authorization);
    expect(seen.timeoutMs).toBeGreaterThan(59_000);
    expect(seen.timeoutMs).toBeLessThanOrEqual(60_000);
    expect(seen.signal?.aborted).toBe(false);
  });

  it('streams a large output with backpressure, every byte in order', async () => {
    const [lean, viaConnect] = await bothWays(json('big'), SDK_HEADERS);
    expect(lean.body.length).toBeGreaterThan(16 * 256 * 1024);
    // Compared as digests: a deep comparison of two 5 MB buffers takes a minute.
    const digest = (a: Answer) => ({ ...a, body: createHash('sha256').update(a.body).digest('hex') });
    expect(digest(lean)).toEqual(digest(viaConnect));
  });

  const bad: [string, Buffer][] = [
    ['an empty body', Buffer.alloc(0)],
    ['malformed JSON', envelope('{"process":')],
    ['a field of the wrong type', envelope('{"process":{"cmd":7}}')],
    ['a body that is not UTF-8', envelope(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]))],
    ['a truncated envelope', json('echo').subarray(0, 20)],
    ['two messages', Buffer.concat([json('echo'), json('echo')])],
    ['a compressed message without an encoding', envelope('{}', 1)],
    ['an end-stream flag in the request', envelope('{}', 2)],
  ];
  for (const [what, body] of bad) {
    it(`answers ${what} with connect-node's error`, async () => {
      const [lean, viaConnect] = await bothWays(body, SDK_HEADERS);
      expect(lean.status).toBe(200);
      expect(lean.body.toString()).toContain('"error"');
      expect(lean).toEqual(viaConnect);
    });
  }

  it("ends the stream with the implementation's error, before or after the first event", async () => {
    for (const cmd of ['refuse', 'crash']) {
      const [lean, viaConnect] = await bothWays(json(cmd), SDK_HEADERS);
      expect(lean.body.toString()).toContain(cmd === 'refuse' ? '"code":"invalid_argument"' : '"code":"internal"');
      expect(lean).toEqual(viaConnect);
    }
  });

  it('ends the stream with deadline_exceeded at the Connect-Timeout-Ms deadline', async () => {
    const [lean, viaConnect] = await bothWays(json('wait'), { ...SDK_HEADERS, 'connect-timeout-ms': '100' });
    expect(lean.body.toString()).toContain('"code":"deadline_exceeded"');
    expect(lean).toEqual(viaConnect);
  });

  it("aborts the call's signal when the client goes away mid-stream", async () => {
    const req = http.request(`${both.url}/${START}`, { method: 'POST', headers: { ...SDK_HEADERS, 'content-type': 'application/connect+json' }, agent: false });
    req.on('error', () => {});
    const started = new Promise<void>((resolve) => req.on('response', (res) => res.once('data', () => resolve())));
    req.end(json('wait'));
    await started;
    const signal = seen.signal!;
    const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    req.destroy();
    await aborted;
    expect(signal.aborted).toBe(true);
  });

  it('leaves every other request to connect-node', async () => {
    const others: Record<string, string>[] = [
      { 'content-type': 'application/connect+json', 'connect-content-encoding': 'gzip' },
      { 'content-type': 'application/connect+json', 'connect-accept-encoding': 'gzip, br' },
      { 'content-type': 'application/connect+json', 'connect-timeout-ms': 'soon' },
      { 'content-type': 'application/grpc' },
      { 'content-type': 'application/json' },
    ];
    for (const headers of others) {
      const before = both.served.connect;
      await post(json('echo'), { ...SDK_HEADERS, ...headers });
      expect(both.served.connect, JSON.stringify(headers)).toBe(before + 1);
    }
  });
});
