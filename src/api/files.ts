import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Hono } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { ServiceDeps } from '../services/context.js';
import { contentDisposition, sniffType, typeByExtension } from '../system/mime.js';
import type { Env } from './app.js';
import { negotiateEncoding } from './encoding.js';
import { HttpError } from './errors.js';
import { filesAccess } from './files-access.js';

/** Bytes read from disk per chunk: large enough to keep syscalls and stream overhead low. */
const READ_CHUNK = 256 * 1024;

export function filesRoutes(deps: ServiceDeps): Hono<Env> {
  const app = new Hono<Env>();

  app.get('/files', async (c) => {
    const rawPath = c.req.query('path');
    const { path: resolved } = filesAccess(c, deps, 'read', rawPath);
    let st;
    try {
      st = await stat(resolved);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new HttpError(404, `path '${resolved}' does not exist`);
      throw new HttpError(500, `error checking if path exists '${resolved}': ${(err as Error).message}`);
    }
    if (st.isDirectory()) throw new HttpError(400, `path '${resolved}' is a directory`);

    let coding = negotiateEncoding(c.req.header('accept-encoding'));
    if (coding === undefined) throw new HttpError(400, 'error parsing Accept-Encoding: no acceptable encoding found, supported: [gzip]');
    if (['range', 'if-modified-since', 'if-none-match', 'if-range'].some((h) => c.req.header(h) !== undefined)) coding = 'identity';

    let fh;
    try {
      fh = await open(resolved, 'r');
    } catch (err) {
      throw new HttpError(500, `error opening file '${resolved}': ${(err as Error).message}`);
    }
    let contentType = typeByExtension(rawPath ?? resolved);
    if (!contentType) {
      const head = Buffer.alloc(Math.min(512, st.size));
      const { bytesRead } = await fh.read(head, 0, head.length, 0);
      contentType = sniffType(head.subarray(0, bytesRead));
    }

    const res = c.env.outgoing;
    const headers: Record<string, string | number> = {
      'Content-Type': contentType,
      'Content-Disposition': contentDisposition(path.basename(resolved)),
      Vary: 'Accept-Encoding',
      'Last-Modified': st.mtime.toUTCString(),
      'Cache-Control': 'no-store',
    };
    const source = createReadStream('', { fd: fh, highWaterMark: READ_CHUNK, start: 0 });
    try {
      if (coding === 'gzip') {
        res.writeHead(200, { ...headers, 'Content-Encoding': 'gzip' });
        await pipeline(source, createGzip({ level: 1, chunkSize: 64 * 1024 }), res);
      } else {
        res.writeHead(200, { ...headers, 'Content-Length': st.size, 'Accept-Ranges': 'bytes' });
        await pipeline(source, res);
      }
    } catch (err) {
      // The client went away mid-stream; nothing more can be sent.
      deps.logger.debug({ err, path: resolved }, 'download interrupted');
    }
    return RESPONSE_ALREADY_SENT;
  });

  return app;
}
