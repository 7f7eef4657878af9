import { requestUser } from '../../auth/user.js';
import { resolvePath } from '../../system/paths.js';
import type { User } from '../../system/users.js';
import type { RpcCall, ServiceDeps } from '../context.js';
import { fsError } from '../errors.js';

/** Shared helpers of the filesystem RPCs: the request's user and its resolved paths. */
export class FilesystemContext {
  constructor(readonly deps: ServiceDeps) {}

  user(ctx: RpcCall): User {
    return requestUser(ctx.requestHeader.get('authorization'), this.deps.state, this.deps.users);
  }

  /** The request user and the path resolved against their home; bad paths are invalid_argument. */
  resolve(input: string, ctx: RpcCall): { user: User; path: string } {
    const user = this.user(ctx);
    try {
      return { user, path: resolvePath(input, user, this.deps.state.defaultWorkdir) };
    } catch (err) {
      throw fsError(err, input);
    }
  }
}
