import { stat } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { MakeDirResponseSchema, type MakeDirRequest, type MakeDirResponse } from '../../gen/filesystem/filesystem_pb.js';
import { entryInfo } from '../../system/entry.js';
import type { RpcCall } from '../context.js';
import type { FilesystemContext } from './context.js';
import { ensureDirs } from './ensure-dirs.js';
import { errnoCode, wrapped } from './errors.js';

/** Creates a directory and its missing parents, owned by the request's user. */
export async function makeDir(fs: FilesystemContext, req: MakeDirRequest, ctx: RpcCall): Promise<MakeDirResponse> {
  const { user, path } = fs.resolve(req.path, ctx);
  const existing = await stat(path).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw wrapped(Code.Internal, 'error getting file info', err);
  });
  if (existing?.isDirectory()) throw new ConnectError(`directory already exists: ${path}`, Code.AlreadyExists);
  if (existing) throw new ConnectError(`path already exists but it is not a directory: ${path}`, Code.InvalidArgument);
  try {
    await ensureDirs(path, user.uid, user.gid);
  } catch (err) {
    throw wrapped(Code.Internal, 'error creating directory', err);
  }
  try {
    return create(MakeDirResponseSchema, { entry: await entryInfo(path, fs.deps.users.names()) });
  } catch (err) {
    throw wrapped(Code.Internal, 'error getting file info', err);
  }
}
