import { stat, statfs } from 'node:fs/promises';
import { Code, ConnectError } from '@connectrpc/connect';
import { errnoCode, wrapped } from './errors.js';

// NFS, CIFS, SMB, SMB2 and FUSE: inotify there misses changes made elsewhere, so envd refuses them unless asked.
const NETWORK_FILESYSTEMS = new Set([0x6969, 0xff534d42, 0x517b, 0xfe534d42, 0x65735546]);

/** Checks that `dir` can be watched as envd checks it: it exists, is a directory, and is local unless allowed. */
export async function checkWatchable(dir: string, allowNetworkMounts: boolean): Promise<void> {
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw wrapped(Code.NotFound, `path ${dir} not found`, err);
    throw wrapped(Code.Internal, `error statting path ${dir}`, err);
  }
  if (!st.isDirectory()) throw new ConnectError(`path ${dir} not a directory`, Code.InvalidArgument);
  let type: number;
  try {
    type = Number((await statfs(dir)).type);
  } catch (err) {
    throw wrapped(Code.Internal, 'error checking mount status', err);
  }
  if (NETWORK_FILESYSTEMS.has(type) && !allowNetworkMounts) {
    throw new ConnectError(`cannot watch path on network filesystem: ${dir}`, Code.InvalidArgument);
  }
}
