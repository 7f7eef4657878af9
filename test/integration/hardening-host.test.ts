import http2 from 'node:http2';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { StatRequestSchema, StatResponseSchema } from '../../src/gen/filesystem/filesystem_pb.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { httpText, rawH2Post, rawRequest } from '../helpers/raw-http.js';

/** Two ways a request comes without a usable authority: HTTP/1.0 with no Host, and `Host:` left empty. */
const variants: { name: string; version: string; headers: [string, string][] }[] = [
  { name: 'HTTP/1.0 without Host', version: '1.0', headers: [] },
  { name: 'HTTP/1.1 with an empty Host', version: '1.1', headers: [['Host', ''], ['Connection', 'close']] },
];

describe('a request without a usable Host header', () => {
  let d: RunningDaemon;
  let file: string;
  beforeAll(async () => {
    d = await startDaemon();
    file = path.join(mkdtempSync(path.join(os.tmpdir(), 'sandboxd-host-')), 'note.txt');
    writeFileSync(file, 'hello\n');
  });
  afterAll(async () => {
    await d?.stop();
  });

  async function expectStillServing(): Promise<void> {
    expect(d.child.exitCode, 'daemon exit code').toBeNull();
    expect(d.child.signalCode, 'daemon exit signal').toBeNull();
    expect((await fetch(`${d.url}/health`)).status).toBe(204);
  }

  for (const v of variants) {
    const send = (method: string, target: string, headers: [string, string][] = [], body = '') =>
      rawRequest(d.port, httpText(method, target, [...v.headers, ...headers], body, v.version));

    it(`${v.name}: Connect JSON Stat answers 200 and the daemon keeps serving`, async () => {
      const res = await send('POST', '/filesystem.Filesystem/Stat', [['Content-Type', 'application/json']], JSON.stringify({ path: '/tmp' }));
      expect(res.status, res.text).toBe(200);
      expect(res.text).toContain('"path":"/tmp"');
      await expectStillServing();
    });

    it(`${v.name}: Connect binary Stat and a Connect stream answer and the daemon keeps serving`, async () => {
      const bin = Buffer.from(toBinary(StatRequestSchema, create(StatRequestSchema, { path: '/tmp' })));
      const unary = await send('POST', '/filesystem.Filesystem/Stat', [['Content-Type', 'application/proto']], bin.toString('latin1'));
      expect(unary.status, unary.text).toBe(200);
      // The process List call over the Connect streaming framing (an empty envelope).
      const list = await send('POST', '/process.Process/List', [['Content-Type', 'application/json']], '{}');
      expect(list.status, list.text).toBe(200);
      await expectStillServing();
    });

    it(`${v.name}: /health answers 204, /envs 200 and /files 200`, async () => {
      expect((await send('GET', '/health')).status).toBe(204);
      await expectStillServing();
      const envs = await send('GET', '/envs');
      expect(envs.status).toBe(200);
      await expectStillServing();
      const download = await send('GET', `/files?path=${encodeURIComponent(file)}`);
      expect(download.status, download.text).toBe(200);
      expect(download.text.endsWith('\r\n\r\nhello\n')).toBe(true);
      await expectStillServing();
    });
  }

  it('a Host no URL can hold is refused with 400 and the daemon keeps serving', async () => {
    const res = await rawRequest(d.port, httpText('POST', '/filesystem.Filesystem/Stat', [['Host', 'a b'], ['Content-Type', 'application/json'], ['Connection', 'close']], '{}', '1.1'));
    expect(res.status).toBe(400);
    await expectStillServing();
  });

  it('gRPC over h2c answers with :authority, and without one (or empty) is refused by HTTP/2 and the daemon keeps serving', async () => {
    const body = Buffer.from(toBinary(StatRequestSchema, create(StatRequestSchema, { path: '/tmp' })));
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    const served = await rawH2Post(d.port, '/filesystem.Filesystem/Stat', [':authority', `127.0.0.1:${d.port}`], 'application/grpc', frame);
    expect(served.errorCode, 'h2 error code').toBeUndefined();
    expect(served.headerBlocks.length, 'headers and trailers').toBe(2);
    expect(fromBinary(StatResponseSchema, served.data.subarray(5)).entry?.path).toBe('/tmp');
    // nghttp2 refuses these before any handler runs; what matters is that the daemon lives on.
    for (const authority of [undefined, [':authority', ''], ['host', '']] as const) {
      const refused = await rawH2Post(d.port, '/filesystem.Filesystem/Stat', authority as [':authority' | 'host', string] | undefined, 'application/grpc', frame);
      expect(refused.errorCode, `error code with ${JSON.stringify(authority)}`).toBe(http2.constants.NGHTTP2_PROTOCOL_ERROR);
      await expectStillServing();
    }
  });
});
