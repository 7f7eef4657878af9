import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { Transform, type Readable } from 'node:stream';
import { PicodError } from './errors.js';

/** PicoD's MaxBodySize: bodies past 32 MiB are refused with 413. */
export const MAX_BODY_BYTES = 32 << 20;

export type Incoming = IncomingMessage | Http2ServerRequest;

export function tooLarge(): PicodError {
  return new PicodError(413, 'request body too large', `maximum allowed size is ${MAX_BODY_BYTES} bytes`, false);
}

/** The request body, failing with 413 once more than MAX_BODY_BYTES arrive (chunked bodies included). */
export function limitedBody(incoming: Incoming): Readable {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > MAX_BODY_BYTES) done(tooLarge());
      else done(null, chunk);
    },
  });
  incoming.on('error', (err) => counter.destroy(err));
  return incoming.pipe(counter);
}

/** The whole (bounded) body in memory. */
export async function readLimitedBody(incoming: Incoming): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of limitedBody(incoming)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A JSON object body, as gin's binding reads it: 400 `EOF` when empty, 400 for bad JSON or a non-object. */
export function jsonObjectBody(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new PicodError(400, body.length === 0 ? 'EOF' : `invalid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new PicodError(400, 'request body must be a JSON object');
  return parsed as Record<string, unknown>;
}
