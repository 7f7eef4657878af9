import { create } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { RemoveResponseSchema, type RemoveRequest, type RemoveResponse } from '../../gen/filesystem/filesystem_pb.js';
import { removeAll } from '../../system/remove-all.js';
import type { RpcCall } from '../context.js';
import type { FilesystemContext } from './context.js';
import { wrapped } from './errors.js';

/**
 * Removes a file, a symlink (not its target) or a whole tree. A path that is already gone is not
 * an error: envd removes with Go's os.RemoveAll, and the SDK's own tests rely on that.
 */
export async function remove(fs: FilesystemContext, req: RemoveRequest, ctx: RpcCall): Promise<RemoveResponse> {
  const { path } = fs.resolve(req.path, ctx);
  try {
    await removeAll(path);
  } catch (err) {
    throw wrapped(Code.Internal, 'error removing file or directory', err);
  }
  return create(RemoveResponseSchema, {});
}
