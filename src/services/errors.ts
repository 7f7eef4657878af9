import { Code, ConnectError } from '@connectrpc/connect';
import { PathError } from '../system/paths.js';

/** Maps a filesystem error to the Connect code envd answers with. */
export function fsError(err: unknown, what: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof PathError) return new ConnectError(err.message, Code.InvalidArgument);
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT':
      return new ConnectError(`${what}: no such file or directory`, Code.NotFound);
    case 'EEXIST':
      return new ConnectError(`${what}: already exists`, Code.AlreadyExists);
    case 'ENOTDIR':
      return new ConnectError(`${what}: not a directory`, Code.InvalidArgument);
    case 'EISDIR':
      return new ConnectError(`${what}: is a directory`, Code.InvalidArgument);
    case 'EACCES':
    case 'EPERM':
      return new ConnectError(`${what}: permission denied`, Code.PermissionDenied);
    case 'ENOSPC':
      return new ConnectError(`${what}: no space left on device`, Code.ResourceExhausted);
    default:
      return new ConnectError(`${what}: ${e.message ?? String(err)}`, Code.Internal);
  }
}
