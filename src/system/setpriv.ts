import { firstExecutable } from './find-executable.js';

// Apart from src/services/process/launch.ts so that the daemon's start (src/system/survival.ts) can look it
// up without loading the process service and Connect with it (they load on the first RPC).

const SETPRIV_CANDIDATES = ['/usr/bin/setpriv', '/bin/setpriv'];

let setprivPath: string | null | undefined;

/** util-linux's setpriv, looked up once; null when it is not installed. */
export function setprivBinary(): string | null {
  if (setprivPath === undefined) setprivPath = firstExecutable(SETPRIV_CANDIDATES) ?? null;
  return setprivPath;
}
