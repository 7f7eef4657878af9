import type http from 'node:http';

/** A header as Headers.get answers it: Node joins repeated headers (and drops repeated singletons) alike. */
export function header(req: http.IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
}

/** `identity` (or nothing): the request asks for no compression either way. */
export function identity(value: string | null): boolean {
  return value === null || value.trim().toLowerCase() === 'identity';
}

/** Gathers a request body whole (an RPC's one message) and hands it on once it ended; a client that leaves never calls back. */
export function onBody(req: http.IncomingMessage, done: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    size += chunk.length;
  });
  req.once('end', () => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
}
