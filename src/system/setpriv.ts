import { accessSync, constants } from 'node:fs';

// Apart from src/services/process/launch.ts so that the daemon's start (src/system/survival.ts) can look it
// up without loading the process service and Connect with it (they load on the first RPC).

const SETPRIV_CANDIDATES = ['/usr/bin/setpriv', '/bin/setpriv'];

function findSetpriv(): string | undefined {
  for (const p of SETPRIV_CANDIDATES) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

let setprivPath: string | null | undefined;

/** util-linux's setpriv, looked up once; null when it is not installed. */
export function setprivBinary(): string | null {
  if (setprivPath === undefined) setprivPath = findSetpriv() ?? null;
  return setprivPath;
}
