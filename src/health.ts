import type http from 'node:http';
import type http2 from 'node:http2';

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** A `/health` without credentials: the envd face answers it 204 without loading its routes (src/server.ts). */
export function isPlainHealth(req: Req): boolean {
  const pathname = (req.url ?? '/').split('?', 1)[0];
  return pathname === '/health' && (req.method === 'GET' || req.method === 'HEAD') && req.headers.authorization === undefined;
}

export function answerPlainHealth(res: Res): void {
  res.writeHead(204, { 'Cache-Control': 'no-store' });
  res.end();
}
