import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip, gzip as gzipCallback } from 'node:zlib';
import { Hono } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { ServiceDeps } from '../services/context.js';
import { contentDisposition, sniffType, typeByExtension } from '../system/mime.js';
import type { FaceEnv } from '../face.js';
import { sendFileBody } from '../system/send-file.js';
import { negotiateEncoding } from './encoding.js';
import { HttpError } from './errors.js';
import { filesAccess } from './files-access.js';
import { registerCompose } from './files-compose.js';
import { registerUpload } from './files-upload.js';

/** Bytes read from disk per chunk for gzip, whose compression costs far more than the reads. */
const READ_CHUNK = 256 * 1024;

/**
 * Files up to this size are read with one read and sent with one write (gzip in one call on the
 * thread pool): a read stream, a pipeline and a gzip stream per request cost more than the transfer.
 */
const SMALL_FILE = 64 * 1024;

const gzipOnce = promisify(gzipCallback);

/** The part of a file a request asked for: all of it, one range, or a range that cannot be served. */
export type RangeChoice = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * Interprets a Range header as Go's ServeContent does for one range: `bytes=a-b`, `bytes=a-` and
 * `bytes=-n`; ranges past the end are unsatisfiable. Several ranges are answered whole (allowed
 * by RFC 9110), as is anything that is not a byte range.
 */
export function chooseRange(header: string | undefined, size: number): RangeChoice {
  if (!header) return { kind: 'full' };
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header.trim());
  if (!m) return header.trim().startsWith('bytes=') && !header.includes(',') ? { kind: 'unsatisfiable' } : { kind: 'full' };
  const [, first, last] = m;
  if (first === '' && last === '') return { kind: 'unsatisfiable' };
  if (first === '') {
    const n = Number(last);
    if (n === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}

/** HTTP dates have whole seconds; Go compares modification times truncated to them. */
const wholeSeconds = (ms: number): number => Math.floor(ms / 1000) * 1000;

export function filesRoutes(deps: ServiceDeps): Hono<FaceEnv> {
  const app = new Hono<FaceEnv>();

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

    const mtime = wholeSeconds(st.mtimeMs);
    const baseHeaders: Record<string, string> = {
      'Content-Disposition': contentDisposition(path.basename(resolved)),
      Vary: 'Accept-Encoding',
      'Last-Modified': new Date(mtime).toUTCString(),
      'Cache-Control': 'no-store',
    };

    // Conditional requests, as ServeContent checks them (there is no ETag).
    const unmodifiedSince = Date.parse(c.req.header('if-unmodified-since') ?? '');
    if (!Number.isNaN(unmodifiedSince) && mtime > unmodifiedSince) return c.body(null, 412, baseHeaders);
    const modifiedSince = Date.parse(c.req.header('if-modified-since') ?? '');
    if (c.req.header('if-none-match') === undefined && !Number.isNaN(modifiedSince) && mtime <= modifiedSince) {
      return c.body(null, 304, baseHeaders);
    }
    let range = chooseRange(c.req.header('range'), st.size);
    const ifRange = c.req.header('if-range');
    if (ifRange !== undefined && Date.parse(ifRange) !== mtime) range = { kind: 'full' };
    if (range.kind === 'unsatisfiable') {
      return c.body('invalid range: failed to overlap\n', 416, {
        ...baseHeaders,
        'Content-Range': `bytes */${st.size}`,
        'Content-Type': 'text/plain; charset=utf-8',
      });
    }

    let fh;
    try {
      fh = await open(resolved, 'r');
    } catch (err) {
      throw new HttpError(500, `error opening file '${resolved}': ${(err as Error).message}`);
    }
    const res = c.env.outgoing;
    const gzip = coding === 'gzip' && range.kind === 'full';
    if (range.kind === 'full' && st.isFile() && st.size > 0 && st.size <= SMALL_FILE && c.req.method !== 'HEAD') {
      return sendSmall(res, fh, st.size, { ...baseHeaders, 'Content-Type': typeByExtension(rawPath ?? resolved) }, gzip);
    }
    let contentType = typeByExtension(rawPath ?? resolved);
    if (!contentType) {
      const head = Buffer.alloc(Math.min(512, st.size));
      const { bytesRead } = await fh.read(head, 0, head.length, 0);
      contentType = sniffType(head.subarray(0, bytesRead));
    }
    const start = range.kind === 'partial' ? range.start : 0;
    const end = range.kind === 'partial' ? range.end : st.size - 1;
    const status = range.kind === 'partial' ? 206 : 200;
    const headers: Record<string, string> = { ...baseHeaders, 'Content-Type': contentType };
    if (gzip) {
      headers['Content-Encoding'] = 'gzip';
    } else {
      headers['Content-Length'] = String(end - start + 1);
      headers['Accept-Ranges'] = 'bytes';
      if (range.kind === 'partial') headers['Content-Range'] = `bytes ${start}-${end}/${st.size}`;
    }
    if (c.req.method === 'HEAD') {
      await fh.close();
      return c.body(null, status, headers);
    }

    try {
      res.writeHead(status, headers);
      if (gzip) await pipeline(createReadStream('', { fd: fh, highWaterMark: READ_CHUNK, autoClose: false }), createGzip({ level: 1, chunkSize: 64 * 1024 }), res);
      else await sendFileBody(fh, res, start, end);
    } catch (err) {
      // The client went away mid-stream, or the file could not be read; nothing more can be sent.
      deps.logger.debug({ err, path: resolved }, 'download interrupted');
    } finally {
      await fh.close().catch(() => undefined);
    }
    return RESPONSE_ALREADY_SENT;
  });

  /** A whole small file: one read, one write; the content type is sniffed from what was read. */
  async function sendSmall(res: FaceEnv['Bindings']['outgoing'], fh: FileHandle, size: number, headers: Record<string, string | undefined>, gzip: boolean): Promise<Response> {
    let body: Buffer;
    try {
      const buf = Buffer.allocUnsafe(size);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      body = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = v;
    out['Content-Type'] ??= sniffType(body.subarray(0, 512));
    if (gzip) {
      out['Content-Encoding'] = 'gzip';
      body = await gzipOnce(body, { level: 1 });
    } else {
      out['Accept-Ranges'] = 'bytes';
    }
    out['Content-Length'] = String(body.length);
    res.writeHead(200, out);
    res.end(body);
    return RESPONSE_ALREADY_SENT;
  }

  registerUpload(app, deps);
  registerCompose(app, deps);
  return app;
}
