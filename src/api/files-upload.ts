import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import busboy from 'busboy';
import type { Hono } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { ServiceDeps } from '../services/context.js';
import { WriteFailure, writeFileAtomically } from '../services/filesystem/atomic-write.js';
import { PathError, resolvePath } from '../system/paths.js';
import type { User } from '../system/users.js';
import { metadataProblem, readMetadata } from '../system/xattrs.js';
import type { FaceEnv } from '../face.js';
import { HttpError } from './errors.js';
import { filesAccess } from './files-access.js';

type Incoming = IncomingMessage | Http2ServerRequest;
type Outgoing = ServerResponse | Http2ServerResponse;

/** One uploaded file as envd answers it. */
interface UploadedEntry {
  path: string;
  name: string;
  type: 'file';
  metadata?: Record<string, string>;
}

interface UploadContext {
  deps: ServiceDeps;
  user: User;
  metadata: Record<string, string>;
  contentLength: number | undefined;
  /** Directories this request found on a local filesystem (AtomicWriteOptions.knownDirs). */
  knownDirs: Set<string>;
}

const METADATA_HEADER = 'x-metadata-';

/**
 * `X-Metadata-<key>` headers from Node's rawHeaders (name, value, name, value, ...): keys
 * lowercased, the first value of a repeated header wins (as envd).
 */
export function metadataFromHeaders(rawHeaders: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (!name.startsWith(METADATA_HEADER)) continue;
    const key = name.slice(METADATA_HEADER.length);
    if (key && !Object.hasOwn(out, key)) out[key] = rawHeaders[i + 1]!;
  }
  return out;
}

/** The body as sent, decompressed when `Content-Encoding: gzip` (the only coding envd takes). */
function decodedBody(incoming: Incoming): Readable {
  const header = incoming.headers['content-encoding'];
  const coding = (header ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (coding === '' || coding === 'identity') return incoming;
  if (coding === 'gzip') {
    // pipe() rather than pipeline(): a failed write must not tear down the request, whose socket
    // carries the answer; a client that goes away still fails the decoder.
    const gunzip = createGunzip();
    // Bad gzip may fail before anyone reads; the error is picked up from `errored` then.
    gunzip.on('error', () => undefined);
    incoming.on('error', (err) => gunzip.destroy(err));
    incoming.once('close', () => {
      if (!incoming.complete) gunzip.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    });
    return incoming.pipe(gunzip);
  }
  throw new HttpError(400, `error decompressing request body: unsupported Content-Encoding: ${header}, supported: [gzip]`);
}

/** `POST /files`: multipart (one or many files) or a raw octet-stream body to `path`. */
export function registerUpload(app: Hono<FaceEnv>, deps: ServiceDeps): void {
  app.post('/files', async (c) => {
    const rawPath = c.req.query('path');
    const { user, path: queryPath } = filesAccess(c, deps, 'write', rawPath);
    const incoming = c.env.incoming as Incoming;
    const outgoing = c.env.outgoing as Outgoing;
    const metadata = metadataFromHeaders(incoming.rawHeaders);
    const problem = metadataProblem(metadata);
    if (problem) throw new HttpError(400, `invalid metadata: ${problem}`);
    const body = decodedBody(incoming);

    const contentType = (incoming.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
    const lengthHeader = Number(incoming.headers['content-length']);
    const ctx: UploadContext = { deps, user, metadata, contentLength: lengthHeader > 0 ? lengthHeader : undefined, knownDirs: new Set() };
    try {
      let entries: UploadedEntry[];
      if (contentType === 'application/octet-stream') {
        if (rawPath === undefined) throw new HttpError(400, 'path query parameter is required for raw body upload');
        entries = [await uploadOne(queryPath, body, ctx)];
      } else if (contentType.startsWith('multipart/')) {
        entries = await uploadMultipart(incoming, body, rawPath === undefined ? undefined : queryPath, ctx);
      } else {
        throw new HttpError(400, `unsupported content type: ${incoming.headers['content-type'] ?? ''}, expected multipart/form-data or application/octet-stream`);
      }
      sendJson(outgoing, 200, entries);
    } catch (err) {
      const failure = toHttpError(err, ctx);
      if (failure) {
        deps.logger.info({ path: rawPath, status: failure.status, err: failure.message }, 'upload failed');
        sendJson(outgoing, failure.status, { code: failure.status, message: failure.message });
      } else {
        deps.logger.debug({ err, path: rawPath }, 'upload interrupted: client gone');
      }
      // Whatever the client still sends is read and dropped, so the connection stays usable.
      incoming.unpipe();
      incoming.resume();
    }
    return RESPONSE_ALREADY_SENT;
  });
}

async function uploadOne(target: string, source: Readable, ctx: UploadContext): Promise<UploadedEntry> {
  const landed = await writeFileAtomically(target, source, {
    uid: ctx.user.uid,
    gid: ctx.user.gid,
    metadata: ctx.metadata,
    keepMode: true,
    reportAs: 'upload',
    knownDirs: ctx.knownDirs,
    onXattrUnsupported: (err) => ctx.deps.logger.warn({ err, path: target }, 'filesystem has no xattrs; metadata not kept'),
  });
  const entry: UploadedEntry = { path: target, name: path.basename(target), type: 'file' };
  // Without metadata asked for, the write leaves none (a fresh file, or the old set cleared).
  const persisted = Object.keys(ctx.metadata).length > 0 ? await readMetadata(landed) : {};
  if (Object.keys(persisted).length > 0) entry.metadata = persisted;
  return entry;
}

/** Parts written at once: small files cost thread-pool round trips, not bandwidth, so they overlap. */
const PARALLEL_PARTS = 8;

/**
 * Parts named `file` are written as they stream in, up to PARALLEL_PARTS at a time (a part waits,
 * unread, for a free slot, so the form is read no faster than it is written); each lands at `path`
 * when given, else at the part's filename (directories kept). Answers list them in form order. Two
 * parts to one path are refused once the parts before them have landed.
 */
function uploadMultipart(incoming: Incoming, body: Readable, queryPath: string | undefined, ctx: UploadContext): Promise<UploadedEntry[]> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: incoming.headers, preservePath: true, defParamCharset: 'utf8', fileHwm: 1024 * 1024 });
    } catch (err) {
      reject(new HttpError(500, `error parsing multipart form: ${(err as Error).message}`));
      return;
    }
    const entries: (UploadedEntry | undefined)[] = [];
    const targets = new Set<string>();
    const inFlight = new Set<Promise<void>>();
    let failed = false;
    let admitted = Promise.resolve();
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      body.unpipe(parser);
      // Ends the parts being written, if any, so their uploads stop and clean up.
      parser.destroy(err instanceof Error ? err : new Error(String(err)));
      reject(err);
    };
    const landed = (): UploadedEntry[] => entries.filter((e): e is UploadedEntry => e !== undefined);

    parser.on('file', (field, stream, info) => {
      // Part streams fail when the form does; that is handled through `fail`, never as a crash.
      stream.on('error', () => undefined);
      if (failed || field !== 'file') {
        stream.resume();
        return;
      }
      const index = entries.push(undefined) - 1;
      admitted = admitted
        .then(async () => {
          if (failed) return void stream.resume();
          const target = partTarget(queryPath, info.filename ?? '', ctx);
          if (targets.has(target)) {
            await Promise.all(inFlight);
            throw duplicateTarget(target, landed());
          }
          targets.add(target);
          while (inFlight.size >= PARALLEL_PARTS) await Promise.race(inFlight);
          if (failed) return void stream.resume();
          const job: Promise<void> = uploadOne(target, stream, ctx)
            .then((entry) => void (entries[index] = entry))
            .catch((err: unknown) => {
              stream.resume();
              fail(err);
            })
            .finally(() => inFlight.delete(job));
          inFlight.add(job);
        })
        .catch((err: unknown) => {
          stream.resume();
          fail(err);
        });
    });
    parser.on('error', (err: Error) => fail(new HttpError(500, `error reading form: ${err.message}`)));
    parser.on('close', () => void admitted.then(() => Promise.all(inFlight)).then(() => !failed && resolve(landed())));
    body.on('error', (err) => fail(new WriteFailure('source', err.message, err)));
    body.pipe(parser);
  });
}

function partTarget(queryPath: string | undefined, filename: string, ctx: UploadContext): string {
  if (queryPath !== undefined) return queryPath;
  try {
    return resolvePath(filename, ctx.user, ctx.deps.state.defaultWorkdir);
  } catch (err) {
    if (err instanceof PathError) throw new HttpError(400, `error resolving path: ${err.message}`);
    throw err;
  }
}

function duplicateTarget(target: string, entries: UploadedEntry[]): HttpError {
  const others = entries.filter((e) => e.path !== target).map((e) => e.path);
  let message = `you cannot upload multiple files to the same path '${target}' in one upload request, only the first specified file was uploaded`;
  if (others.length > 1) message += `, also the following files were uploaded: ${others.join(', ')}`;
  return new HttpError(400, message);
}

/** The answer for a failed upload, or undefined when the client is gone and nothing can be answered. */
function toHttpError(err: unknown, ctx: UploadContext): HttpError | undefined {
  if (err instanceof HttpError) return err;
  if (!(err instanceof WriteFailure)) return new HttpError(500, `error writing file: ${(err as Error).message}`);
  switch (err.kind) {
    case 'is-directory':
      return new HttpError(400, err.message);
    case 'no-space':
      return new HttpError(
        507,
        err.message === 'not enough disk space available' && ctx.contentLength
          ? `attempted to write ${ctx.contentLength} bytes: ${err.message}`
          : err.message,
      );
    case 'source': {
      const code = (err.source as NodeJS.ErrnoException | undefined)?.code ?? '';
      if (code.startsWith('Z_')) return new HttpError(400, `error decompressing request body: ${err.message}`);
      if (code === 'ECONNRESET' || err.message === 'aborted') return undefined;
      return new HttpError(500, `error reading form: ${err.message}`);
    }
    default:
      return new HttpError(500, err.message);
  }
}

function sendJson(res: Outgoing, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  };
  if (status >= 400) headers['X-Content-Type-Options'] = 'nosniff';
  (res as ServerResponse).writeHead(status, headers);
  res.end(text);
}
