import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DescMethod } from '@bufbuild/protobuf';
import { Filesystem } from '../../src/gen/filesystem/filesystem_pb.js';
import { Process } from '../../src/gen/process/process_pb.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';

/** Every RPC of both services, as their descriptors list them. */
const methods: DescMethod[] = [...Filesystem.methods, ...Process.methods];

/** Bytes no message parses: a truncated length, wire type 7, and a string field that is not UTF-8. */
const malformed: Record<string, Buffer> = {
  'a truncated length': Buffer.from([0x0a, 0xff]),
  'an invalid wire type': Buffer.from([0x0f, 0x01]),
  'a string that is not UTF-8': Buffer.from([0x0a, 0x02, 0xc3, 0x28]),
};

function envelope(payload: Buffer, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** The Connect end-stream message of a streaming response: the last envelope, flag 0x02, as JSON. */
function endStream(body: Buffer): { error?: { code: string; message: string } } {
  let offset = 0;
  let last: { error?: { code: string; message: string } } = {};
  while (offset + 5 <= body.length) {
    const flags = body.readUInt8(offset);
    const len = body.readUInt32BE(offset + 1);
    const data = body.subarray(offset + 5, offset + 5 + len);
    if (flags & 0x02) last = JSON.parse(data.toString('utf8')) as typeof last;
    offset += 5 + len;
  }
  return last;
}

/** A string field must be valid UTF-8 in every message whose first field is a string. */
function firstFieldIsString(m: DescMethod): boolean {
  const f = m.input.fields.find((x) => x.number === 1);
  return f?.fieldKind === 'scalar' && f.scalar === 9; // ScalarType.STRING
}

describe('malformed binary protobuf on every RPC', () => {
  let d: RunningDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => {
    await d?.stop();
  });

  for (const m of methods) {
    const path = `/${m.parent.typeName}/${m.name}`;
    for (const [what, bytes] of Object.entries(malformed)) {
      if (what.includes('UTF-8') && !firstFieldIsString(m)) continue;

      it(`${m.name} over Connect with ${what} is invalid_argument`, async () => {
        const unary = m.methodKind === 'unary';
        const res = await fetch(`${d.url}${path}`, {
          method: 'POST',
          headers: { 'Content-Type': unary ? 'application/proto' : 'application/connect+proto', 'Connect-Protocol-Version': '1' },
          body: unary ? bytes : envelope(bytes),
        });
        const body = Buffer.from(await res.arrayBuffer());
        if (unary) {
          expect(res.status, body.toString()).toBe(400);
          expect((JSON.parse(body.toString()) as { code: string }).code).toBe('invalid_argument');
        } else {
          expect(res.status).toBe(200);
          expect(endStream(body).error?.code, body.toString()).toBe('invalid_argument');
        }
      });

      it(`${m.name} over gRPC with ${what} is status 3 (INVALID_ARGUMENT)`, async () => {
        const session = http2.connect(d.url);
        try {
          const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
          stream.end(envelope(bytes));
          stream.resume();
          const status = await new Promise<string | undefined>((resolve, reject) => {
            // A trailers-only answer carries grpc-status in its headers.
            stream.on('response', (h) => h['grpc-status'] !== undefined && resolve(String(h['grpc-status'])));
            stream.on('trailers', (t) => resolve(String(t['grpc-status'])));
            stream.on('error', reject);
          });
          expect(status).toBe('3');
        } finally {
          session.close();
        }
      });
    }
  }

  it('the daemon still serves after all of them', async () => {
    expect(d.child.exitCode).toBeNull();
    expect((await fetch(`${d.url}/health`)).status).toBe(204);
  });
});
