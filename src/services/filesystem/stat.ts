import { create } from '@bufbuild/protobuf';
import { StatResponseSchema, type StatRequest, type StatResponse } from '../../gen/filesystem/filesystem_pb.js';
import { entryInfo } from '../../system/entry.js';
import { fsError } from '../errors.js';
import type { RpcCall } from '../context.js';
import type { FilesystemContext } from './context.js';

export async function stat(fs: FilesystemContext, req: StatRequest, ctx: RpcCall): Promise<StatResponse> {
  const { path } = fs.resolve(req.path, ctx);
  try {
    return create(StatResponseSchema, { entry: await entryInfo(path, fs.deps.users.names()) });
  } catch (err) {
    throw fsError(err, `file not found: lstat ${path}`);
  }
}
