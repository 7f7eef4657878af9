import http from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { STRICT_TEXT_DECODER } from '../../../src/api/json-body.js';
import { EntryInfoSchema, Filesystem, ListDirResponseSchema, type ListDirRequest, type StatRequest } from '../../../src/gen/filesystem/filesystem_pb.js';
import { Process, SendInputRequestSchema, SendInputResponseSchema, type SendInputRequest } from '../../../src/gen/process/process_pb.js';
import { ACCEPT_COMPRESSION } from '../../../src/services/compression.js';
import type { RpcCall } from '../../../src/services/context.js';
import { unaryHandler } from '../../../src/services/unary.js';
import { LeanBesideConnect, type Answer } from './lean-support.js';

const jsonOptions = { ignoreUnknownFields: true, textDecoder: STRICT_TEXT_DECODER };

/** What the implementations saw of their last call. */
const seen: { input?: SendInputRequest; user?: string | null } = {};

/** Scripted implementations: the pid or path names what they do. */
const processes = {
  sendInput: async (req: SendInputRequest, call: RpcCall) => {
    seen.input = req;
    seen.user = call.requestHeader.get('Authorization');
    const pid = req.process?.selector.case === 'pid' ? req.process.selector.value : 0;
    if (pid === 404) throw new ConnectError(`process with pid ${pid} not found`, Code.NotFound);
    if (pid === 500) throw new Error('a bug');
    if (pid === 429) throw new ConnectError('slow down', Code.ResourceExhausted, { 'retry-after': '1' });
    await new Promise((resolve) => setImmediate(resolve));
    return create(SendInputResponseSchema);
  },
  // A plain object, not a message: connect-node makes the message of it, and so must the lean path.
  list: () => ({ processes: [{ pid: 7, tag: 'x', config: { cmd: 'cat', args: [], envs: {} } }] }) as never,
};
const filesystem = {
  stat: (req: StatRequest) => ({ entry: create(EntryInfoSchema, { name: req.path, path: req.path }) }) as never,
  // A big answer: compressed when the client accepts it (from 1 KiB).
  listDir: (req: ListDirRequest) =>
    create(ListDirResponseSchema, { entries: Array.from({ length: req.depth }, (_, i) => create(EntryInfoSchema, { name: `f${i}`, path: `/tmp/f${i}` })) }),
};

const both = new LeanBesideConnect();
const post = (method: string, body: Buffer | string, headers: Record<string, string>, verb?: string) => both.post(method, body, headers, verb);

const SDK_HEADERS = {
  authorization: `Basic ${Buffer.from('user:').toString('base64')}`,
  'connect-protocol-version': '1',
  'connect-timeout-ms': '60000',
  'accept-encoding': 'gzip, deflate',
};

/** The same request answered by the lean handler and by connect-node (lean-support.ts). */
const bothWays = (method: string, body: Buffer | string, headers: Record<string, string> = SDK_HEADERS, type = 'application/json') => both.bothWays(method, body, headers, type);

/** A binary request answered by the lean handler and, sent gzipped (which only connect-node takes), by connect-node. */
async function protoBothWays(body: Buffer): Promise<[Answer, Answer]> {
  const before = { ...both.served };
  const lean = await post('process.Process/SendInput', body, { ...SDK_HEADERS, 'content-type': 'application/proto' });
  const viaConnect = await post('process.Process/SendInput', gzipSync(body), { ...SDK_HEADERS, 'content-type': 'application/proto', 'content-encoding': 'gzip' });
  expect(both.served.lean - before.lean, 'requests the lean handler served').toBe(1);
  expect(both.served.connect - before.connect, 'requests connect-node served').toBe(1);
  return [lean, viaConnect];
}

const input = (pid: number, data = 'a') => JSON.stringify({ process: { pid }, input: { pty: Buffer.from(data).toString('base64') } });

beforeAll(async () => {
  const lean = unaryHandler(
    [
      [Process, processes],
      [Filesystem, filesystem],
    ],
    jsonOptions,
  );
  const rpc = connectNodeAdapter({
    routes: (r) => {
      r.service(Process, processes);
      r.service(Filesystem, filesystem);
    },
    jsonOptions,
    acceptCompression: ACCEPT_COMPRESSION,
  });
  await both.start(lean, rpc);
});

afterAll(() => both.close());

describe('unary methods as the SDKs call them, served without connect-node', () => {
  it('answers SendInput byte for byte as connect-node does, and gives the call its request', async () => {
    const [lean, viaConnect] = await bothWays('process.Process/SendInput', input(42, 'hi'));
    expect(lean.status).toBe(200);
    expect(lean.headers['content-type']).toBe('application/json');
    expect(lean.body.toString()).toBe('{}');
    expect(lean).toEqual(viaConnect);
    expect(seen.user).toBe(SDK_HEADERS.authorization);
    expect(seen.input?.process?.selector).toEqual({ case: 'pid', value: 42 });
    expect(seen.input?.input?.input.case).toBe('pty');
    expect(Buffer.from(seen.input?.input?.input.value as Uint8Array).toString()).toBe('hi');
  });

  it('answers a binary request byte for byte as connect-node does', async () => {
    const body = Buffer.from(toBinary(SendInputRequestSchema, create(SendInputRequestSchema, { process: { selector: { case: 'pid', value: 3 } } })));
    const [lean, viaConnect] = await protoBothWays(body);
    expect(lean.status).toBe(200);
    expect(lean.headers['content-type']).toBe('application/proto');
    expect(lean).toEqual(viaConnect);
  });

  it('makes the message of a plain answer, as connect-node does', async () => {
    const [lean, viaConnect] = await bothWays('process.Process/List', '{}');
    expect(lean.body.toString()).toContain('"pid":7');
    expect(lean).toEqual(viaConnect);
    const [stat, statViaConnect] = await bothWays('filesystem.Filesystem/Stat', '{"path":"/etc"}');
    expect(stat.body.toString()).toContain('"/etc"');
    expect(stat).toEqual(statViaConnect);
  });

  it('compresses a large answer when the client accepts it, and only then', async () => {
    const [lean, viaConnect] = await bothWays('filesystem.Filesystem/ListDir', '{"path":"/tmp","depth":200}');
    expect(lean.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(gunzipSync(lean.body).toString()).entries).toHaveLength(200);
    expect(lean).toEqual(viaConnect);
    const { 'accept-encoding': _, ...plain } = SDK_HEADERS;
    const [raw, rawViaConnect] = await bothWays('filesystem.Filesystem/ListDir', '{"path":"/tmp","depth":200}', plain);
    expect(raw.headers['content-encoding']).toBeUndefined();
    expect(raw).toEqual(rawViaConnect);
    const [br, brViaConnect] = await bothWays('filesystem.Filesystem/ListDir', '{"path":"/tmp","depth":200}', { ...plain, 'accept-encoding': 'zstd, br' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br).toEqual(brViaConnect);
    const [small, smallViaConnect] = await bothWays('filesystem.Filesystem/ListDir', '{"path":"/tmp","depth":2}');
    expect(small.headers['content-encoding']).toBeUndefined();
    expect(small).toEqual(smallViaConnect);
  });

  it("answers the implementation's errors with connect-node's status, headers and JSON", async () => {
    const cases: [number, number, string][] = [
      [404, 404, 'not_found'],
      [500, 500, 'internal'],
      [429, 429, 'resource_exhausted'],
    ];
    for (const [pid, status, code] of cases) {
      const [lean, viaConnect] = await bothWays('process.Process/SendInput', input(pid));
      expect(lean.status).toBe(status);
      expect(JSON.parse(lean.body.toString()).code).toBe(code);
      expect(lean).toEqual(viaConnect);
    }
  });

  const bad: [string, Buffer | string][] = [
    ['an empty body', ''],
    ['malformed JSON', '{"process":'],
    ['a field of the wrong type', '{"process":{"pid":"seven"}}'],
    ['a body that is not UTF-8', Buffer.from([0x7b, 0xc3, 0x28, 0x7d])],
    ['a body with a byte-order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{}')])],
    ['an array', '[]'],
    ['a 1 MiB string of garbage', 'x'.repeat(1 << 20)],
  ];
  for (const [what, body] of bad) {
    it(`answers ${what} with connect-node's error`, async () => {
      const [lean, viaConnect] = await bothWays('process.Process/SendInput', body);
      expect(lean.status).toBe(400);
      expect(JSON.parse(lean.body.toString()).code).toBe('invalid_argument');
      expect(lean).toEqual(viaConnect);
    });
  }

  it("answers a binary body that is not the message with connect-node's error", async () => {
    const body = Buffer.from([0x0a, 0xff, 0xff, 0xff]);
    const [lean, viaConnect] = await protoBothWays(body);
    expect(lean.status).toBe(400);
    expect(lean).toEqual(viaConnect);
  });

  it('ignores unknown fields, as envd does', async () => {
    const [lean, viaConnect] = await bothWays('process.Process/SendInput', JSON.stringify({ ...JSON.parse(input(42)), later: 1 }));
    expect(lean.status).toBe(200);
    expect(lean).toEqual(viaConnect);
  });

  it('keeps serving after a client that leaves before its body ends', async () => {
    await new Promise<void>((resolve) => {
      const req = http.request(`${both.url}/process.Process/SendInput`, { method: 'POST', headers: { ...SDK_HEADERS, 'content-type': 'application/json', 'content-length': '100' }, agent: false });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.write('{"process":');
      setTimeout(() => req.destroy(), 20);
    });
    const [lean, viaConnect] = await bothWays('process.Process/SendInput', input(42));
    expect(lean.status).toBe(200);
    expect(lean).toEqual(viaConnect);
  });

  it('leaves every other request to connect-node', async () => {
    const others: [string, Record<string, string>, string?][] = [
      ['process.Process/SendInput', { 'content-type': 'application/json', 'content-encoding': 'gzip' }],
      ['process.Process/SendInput', { 'content-type': 'application/json', 'connect-timeout-ms': 'soon' }],
      ['process.Process/SendInput', { 'content-type': 'application/json; charset=utf-8' }],
      ['process.Process/SendInput', { 'content-type': 'application/connect+json' }],
      ['process.Process/SendInput', { 'content-type': 'application/grpc' }],
      ['process.Process/SendInput', { 'content-type': 'application/json' }, 'PUT'],
      ['process.Process/Start', { 'content-type': 'application/json' }],
      ['process.Process/Nope', { 'content-type': 'application/json' }],
      ['filesystem.Filesystem/Remove', { 'content-type': 'application/json' }],
    ];
    for (const [method, headers, verb] of others) {
      const before = both.served.connect;
      await post(method, input(42), { ...SDK_HEADERS, ...headers }, verb);
      expect(both.served.connect, `${method} ${JSON.stringify(headers)}`).toBe(before + 1);
    }
  });
});
