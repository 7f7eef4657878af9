import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Hono } from 'hono';
import type { ServiceDeps } from '../services/context.js';
import { WriteFailure, writeFileAtomically } from '../services/filesystem/atomic-write.js';
import { PathError, resolvePath } from '../system/paths.js';
import { UserNotFoundError, type User } from '../system/users.js';
import type { FaceEnv } from '../face.js';
import { parseJsonBody } from './json-body.js';
import { HttpError } from './errors.js';

interface ComposeRequest {
  source_paths?: unknown;
  destination?: unknown;
  username?: unknown;
}

/** Bytes read from each source per chunk. */
const READ_CHUNK = 1024 * 1024;

/** The sources' bytes one after another, read lazily. */
function concatenated(paths: string[]): Readable {
  return Readable.from(
    (async function* () {
      for (const p of paths) yield* createReadStream(p, { highWaterMark: READ_CHUNK });
    })(),
    { objectMode: false },
  );
}

/**
 * `POST /files/compose`: `{source_paths, destination, username?}` → the sources concatenated in
 * order into the destination (written atomically, parents created for the user), then the sources
 * are removed. Answers the destination entry as envd does.
 */
export function registerCompose(app: Hono<FaceEnv>, deps: ServiceDeps): void {
  app.post('/files/compose', async (c) => {
    let req: ComposeRequest;
    try {
      req = parseJsonBody(await c.req.arrayBuffer()) as ComposeRequest;
      if (typeof req !== 'object' || req === null) throw new Error('expected a JSON object');
    } catch (err) {
      throw new HttpError(400, `invalid request body: ${(err as Error).message}`);
    }
    const sources = req.source_paths;
    if (!Array.isArray(sources) || sources.length === 0) throw new HttpError(400, 'source_paths must not be empty');
    if (!sources.every((s): s is string => typeof s === 'string')) throw new HttpError(400, 'source_paths must be strings');
    if (typeof req.destination !== 'string' || req.destination === '') throw new HttpError(400, 'destination is required');
    if (req.username !== undefined && typeof req.username !== 'string') throw new HttpError(400, 'username must be a string');

    const user = composeUser(req.username, deps);
    const resolve = (p: string, what: string): string => {
      try {
        return resolvePath(p, user, deps.state.defaultWorkdir);
      } catch (err) {
        if (err instanceof PathError) throw new HttpError(400, `error resolving ${what}: ${err.message}`);
        throw err;
      }
    };
    const dest = resolve(req.destination, 'destination path');
    const resolved: string[] = [];
    for (const src of sources) {
      const p = resolve(src, `source path ${JSON.stringify(src)}`);
      if (p === dest) throw new HttpError(400, `source path ${JSON.stringify(src)} cannot be the same as destination`);
      const st = await stat(p).catch(() => undefined);
      if (!st) throw new HttpError(404, `source file not found: ${src}`);
      if (!st.isFile()) throw new HttpError(400, `source path is not a regular file: ${src}`);
      resolved.push(p);
    }

    try {
      await writeFileAtomically(dest, concatenated(resolved), { uid: user.uid, gid: user.gid, metadata: {}, keepMode: false, reportAs: 'compose' });
    } catch (err) {
      if (!(err instanceof WriteFailure)) throw err;
      if (err.kind === 'is-directory') throw new HttpError(400, err.message);
      if (err.kind === 'no-space') throw new HttpError(507, 'not enough disk space available');
      if (err.kind === 'source') throw new HttpError(500, `error composing sources: ${err.message}`);
      throw new HttpError(500, err.message);
    }
    await Promise.all(resolved.map((p) => rm(p, { force: true }).catch(() => undefined)));
    deps.logger.info({ path: dest, sources: resolved.length }, 'files composed');
    return c.json({ path: dest, name: path.basename(dest), type: 'file' });
  });
}

function composeUser(username: string | undefined, deps: ServiceDeps): User {
  const name = username ?? deps.state.defaultUser;
  if (!name) throw new HttpError(400, 'username not provided');
  try {
    return deps.users.lookup(name);
  } catch (err) {
    if (err instanceof UserNotFoundError) throw new HttpError(401, `error looking up user '${name}': user: unknown user ${name}`);
    throw err;
  }
}
