import { rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { MoveResponseSchema, type MoveRequest, type MoveResponse } from '../../gen/filesystem/filesystem_pb.js';
import { entryInfo } from '../../system/entry.js';
import type { RpcCall } from '../context.js';
import type { FilesystemContext } from './context.js';
import { ensureDirs } from './ensure-dirs.js';
import { errnoCode, wrapped } from './errors.js';

/** Renames a file or directory; the destination's missing parents are created for the user, as envd does. */
export async function move(fs: FilesystemContext, req: MoveRequest, ctx: RpcCall): Promise<MoveResponse> {
  const { user, path: source } = fs.resolve(req.source, ctx);
  const { path: destination } = fs.resolve(req.destination, ctx);
  try {
    await ensureDirs(dirname(destination), user.uid, user.gid);
  } catch (err) {
    throw wrapped(Code.Internal, 'error creating destination directories', err);
  }
  try {
    await rename(source, destination);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw wrapped(Code.NotFound, 'source file not found', err);
    throw wrapped(Code.Internal, 'error renaming', err);
  }
  try {
    return create(MoveResponseSchema, { entry: await entryInfo(destination, fs.deps.users.names()) });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw wrapped(Code.NotFound, 'file not found', err);
    throw wrapped(Code.Internal, 'error getting file info', err);
  }
}
