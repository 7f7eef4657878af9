import type { BigIntStats } from 'node:fs';
import { lstat, open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import busboy from 'busboy';
import { Hono } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { chooseRange } from '../api/files.js';
import type { FaceEnv } from '../face.js';
import type { Logger } from '../log.js';
import { WriteFailure, writeFileAtomically } from '../services/filesystem/atomic-write.js';
import { permissionString } from '../system/entry.js';
import { sendFileBody } from '../system/send-file.js';
import { typeByExtension } from '../system/mime.js';
import type { User } from '../system/users.js';
import { jsonObjectBody, limitedBody, readLimitedBody, type Incoming } from './body.js';
import { PicodError, rfc3339Nano } from './errors.js';
import { Workspace, WorkspaceError } from './workspace.js';

export interface FilesDeps {
  workspace: Workspace;
  /** Who owns what PicoD writes: the user its commands run as. */
  user: () => User;
  logger: Logger;
}

/** PicoD's parseFileMode: octal digits up to 0777, anything else (or nothing) is 0644. */
export function parseFileMode(mode: string | undefined): number {
  if (mode === undefined || !/^[0-7]+$/.test(mode)) return 0o644;
  const n = parseInt(mode, 8);
  return n > 0o777 ? 0o644 : n;
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function confine(ws: Workspace, input: string): Promise<string> {
  try {
    return await ws.resolve(input);
  } catch (err) {
    if (err instanceof WorkspaceError) throw new PicodError(400, err.message);
    throw err;
  }
}

/** Writes an upload as PicoD does (parents 0755, a new file gets `mode` less the umask, an existing one keeps its mode), atomically. */
async function save(deps: FilesDeps, target: string, content: Readable, mode: number): Promise<Record<string, unknown>> {
  const user = deps.user();
  try {
    await writeFileAtomically(target, content, { uid: user.uid, gid: user.gid, metadata: {}, keepMode: true, createMode: mode, reportAs: 'upload' });
  } catch (err) {
    if (err instanceof WriteFailure && err.kind === 'is-directory') throw new PicodError(500, `Failed to write file: ${err.message}`);
    if (err instanceof WriteFailure && err.kind === 'source' && err.source instanceof PicodError) throw err.source;
    if (err instanceof WriteFailure && err.kind === 'no-space') throw new PicodError(507, `Failed to write file: ${err.message}`);
    throw new PicodError(500, `Failed to write file: ${(err as Error).message}`);
  }
  const st = await stat(target, { bigint: true });
  return { path: deps.workspace.relative(target), size: Number(st.size), mode: permissionString(Number(st.mode)), modified: rfc3339Nano(st.mtimeNs) };
}

function jsonUploadFields(body: Buffer): { path: string; content: string; mode: string | undefined } {
  const { path: p, content, mode } = jsonObjectBody(body);
  for (const [name, v] of [['path', p], ['content', content], ['mode', mode]] as const) {
    if (v !== undefined && v !== null && typeof v !== 'string') throw new PicodError(400, `field '${name}' must be a string`);
  }
  if (!p) throw new PicodError(400, "Key: 'UploadFileRequest.Path' Error:Field validation for 'Path' failed on the 'required' tag");
  if (!content) throw new PicodError(400, "Key: 'UploadFileRequest.Content' Error:Field validation for 'Content' failed on the 'required' tag");
  return { path: p as string, content: content as string, mode: (mode as string | null | undefined) ?? undefined };
}

/** Strict standard base64 with padding, as Go's base64.StdEncoding (Node's decoder would skip bad characters). */
function decodeBase64(s: string): Buffer {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new PicodError(400, 'Invalid base64 content: illegal base64 data');
  return Buffer.from(s, 'base64');
}

/** The form's `path`, `mode` and `file` (held in memory: the body is at most 32 MiB, as PicoD's gin keeps it). */
function multipartFields(incoming: Incoming): Promise<{ fields: Map<string, string>; file: Buffer[] | undefined }> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: incoming.headers, defParamCharset: 'utf8' });
    } catch (err) {
      reject(new PicodError(400, `Failed to get file: ${(err as Error).message}`));
      return;
    }
    const fields = new Map<string, string>();
    let file: Buffer[] | undefined;
    parser.on('field', (name, value) => {
      if (!fields.has(name)) fields.set(name, value);
    });
    parser.on('file', (name, stream) => {
      stream.on('error', () => undefined);
      if (name !== 'file' || file !== undefined) return void stream.resume();
      const chunks: Buffer[] = [];
      file = chunks;
      stream.on('data', (d: Buffer) => chunks.push(d));
    });
    parser.on('error', (err: Error) => reject(new PicodError(400, `Failed to parse multipart form: ${err.message}`)));
    parser.on('close', () => resolve({ fields, file }));
    const body = limitedBody(incoming);
    body.on('error', (err) => {
      body.unpipe(parser);
      reject(err instanceof PicodError ? err : new PicodError(400, `Failed to read body: ${err.message}`));
    });
    body.pipe(parser);
  });
}

function entryOf(name: string, st: BigIntStats): Record<string, unknown> {
  return { name, size: Number(st.size), modified: rfc3339Nano(st.mtimeNs), mode: permissionString(Number(st.mode)), is_dir: st.isDirectory() };
}

/** `POST /api/files` (JSON or multipart upload), `GET /api/files?path=` (list), `GET /api/files/<path>` (download). */
export function filesRoutes(deps: FilesDeps): Hono<FaceEnv> {
  const app = new Hono<FaceEnv>();
  const ws = deps.workspace;

  app.post('/api/files', async (c) => {
    const incoming = c.env.incoming as Incoming;
    if ((c.req.header('content-type') ?? '').startsWith('multipart/form-data')) {
      const { fields, file } = await multipartFields(incoming);
      const target = fields.get('path');
      if (!target) throw new PicodError(400, "Missing 'path' field");
      if (file === undefined) throw new PicodError(400, 'Failed to get file: http: no such file');
      const safe = await confine(ws, target);
      return c.json(await save(deps, safe, Readable.from(file), parseFileMode(fields.get('mode'))));
    }
    const req = jsonUploadFields(await readLimitedBody(incoming));
    const safe = await confine(ws, req.path);
    const bytes = decodeBase64(req.content);
    return c.json(await save(deps, safe, Readable.from([bytes]), parseFileMode(req.mode)));
  });

  app.get('/api/files', async (c) => {
    const p = c.req.query('path');
    if (!p) throw new PicodError(400, "Missing 'path' query parameter");
    const dir = await confine(ws, p);
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new PicodError(404, 'Directory not found');
      throw new PicodError(500, `Failed to read directory: ${(err as Error).message}`);
    }
    const files: Record<string, unknown>[] = [];
    for (const name of names) {
      try {
        files.push(entryOf(name, await lstat(path.join(dir, name), { bigint: true })));
      } catch (err) {
        // Gone between readdir and lstat: PicoD skips such entries too.
        deps.logger.debug({ err, name }, 'list: entry vanished');
      }
    }
    return c.json({ files });
  });

  app.get('/api/files/*', async (c) => {
    const raw = c.req.path.slice('/api/files/'.length);
    let rel: string;
    try {
      rel = decodeURIComponent(raw);
    } catch {
      rel = raw;
    }
    const file = await confine(ws, rel);
    let st;
    try {
      st = await stat(file);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new PicodError(404, 'File not found');
      throw new PicodError(500, `Failed to get file info: ${(err as Error).message}`);
    }
    if (st.isDirectory()) throw new PicodError(400, 'Path is a directory, not a file');
    const range = chooseRange(c.req.header('range'), st.size);
    const headers: Record<string, string> = {
      'Content-Description': 'File Transfer',
      'Content-Transfer-Encoding': 'binary',
      'Content-Disposition': `attachment; filename="${path.basename(file)}"`,
      'Content-Type': typeByExtension(file) ?? 'application/octet-stream',
      'Last-Modified': new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString(),
      'Accept-Ranges': 'bytes',
    };
    if (range.kind === 'unsatisfiable') {
      return c.text('invalid range: failed to overlap\n', 416, { 'Content-Range': `bytes */${st.size}` });
    }
    const start = range.kind === 'partial' ? range.start : 0;
    const end = range.kind === 'partial' ? range.end : st.size - 1;
    headers['Content-Length'] = String(end - start + 1);
    if (range.kind === 'partial') headers['Content-Range'] = `bytes ${start}-${end}/${st.size}`;
    const status = range.kind === 'partial' ? 206 : 200;
    if (c.req.method === 'HEAD' || st.size === 0) return c.body(null, status, headers);
    let fh;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      throw new PicodError(500, `Failed to open file: ${(err as Error).message}`);
    }
    const res = c.env.outgoing;
    try {
      res.writeHead(status, headers);
      await sendFileBody(fh, res, start, end);
    } catch (err) {
      deps.logger.debug({ err, path: file }, 'picod download interrupted');
    } finally {
      await fh.close().catch(() => undefined);
    }
    return RESPONSE_ALREADY_SENT;
  });

  return app;
}
