import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Code, ConnectError } from '@connectrpc/connect';
import { PathError, resolvePath } from '../../system/paths.js';
import type { User } from '../../system/users.js';

const FALLBACK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * A process's environment as envd builds it: the user's basics, then the `/init` variables,
 * then the request's own; later entries win.
 */
export function processEnv(
  user: User,
  initVars: ReadonlyMap<string, string>,
  requested: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH || FALLBACK_PATH,
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: user.shell,
  };
  for (const [k, v] of initVars) env[k] = v;
  for (const [k, v] of Object.entries(requested)) env[k] = v;
  return env;
}

type Access = 'read' | 'write' | 'exec';
const BIT: Record<Access, number> = { read: 4, write: 2, exec: 1 };

/** Whether `user` may access a file with these stats, by its mode bits (root: exec needs any x bit). */
export function permits(st: Pick<Stats, 'mode' | 'uid' | 'gid'>, user: Pick<User, 'uid' | 'groups'>, access: Access): boolean {
  const bit = BIT[access];
  if (user.uid === 0) return access !== 'exec' || (st.mode & 0o111) !== 0;
  if (st.uid === user.uid) return ((st.mode >> 6) & bit) !== 0;
  if (user.groups.includes(st.gid)) return ((st.mode >> 3) & bit) !== 0;
  return (st.mode & bit) !== 0;
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

/** The working directory a process asks for: the request's, else the default workdir, else home (not checked). */
export function cwdPath(input: string | undefined, user: User, defaultWorkdir: string | undefined): string {
  try {
    return resolvePath(input ?? '', user, defaultWorkdir);
  } catch (err) {
    if (err instanceof PathError) throw invalid(err.message);
    throw err;
  }
}

/** The working directory for a process (cwdPath); it must exist and be a directory the user may enter. */
export async function resolveCwd(input: string | undefined, user: User, defaultWorkdir: string | undefined): Promise<string> {
  const dir = cwdPath(input, user, defaultWorkdir);
  let st: Stats;
  try {
    st = await stat(dir);
  } catch {
    throw invalid(`cwd '${dir}' does not exist`);
  }
  if (!st.isDirectory()) throw invalid(`cwd '${dir}' is not a directory`);
  if (!permits(st, user, 'exec')) throw invalid(`cwd '${dir}': permission denied for user '${user.name}'`);
  return dir;
}

async function executable(file: string, user: User): Promise<'ok' | 'missing' | 'denied' | 'directory'> {
  let st: Stats;
  try {
    st = await stat(file);
  } catch {
    return 'missing';
  }
  if (st.isDirectory()) return 'directory';
  if (!st.isFile() || !permits(st, user, 'exec')) return 'denied';
  return 'ok';
}

/**
 * The program a command names by its path (one with a slash, taken relative to cwd), unchecked;
 * undefined for a bare name, which is searched in PATH. An empty command or one with a NUL byte is
 * invalid_argument.
 */
export function namedExecutable(cmd: string, cwd: string): string | undefined {
  if (cmd === '') throw invalid(`error starting process '': no command given`);
  if (cmd.includes('\0')) throw invalid(`error starting process '${cmd}': command contains a NUL byte`);
  return cmd.includes('/') ? path.resolve(cwd, cmd) : undefined;
}

/**
 * The absolute path of the program to run, found as execvp would (a name with a slash is taken
 * relative to cwd, a bare name is searched in PATH), so a missing binary is a clear error before
 * anything is spawned.
 */
export async function resolveExecutable(cmd: string, cwd: string, searchPath: string | undefined, user: User): Promise<string> {
  const file = namedExecutable(cmd, cwd);
  if (file !== undefined) {
    const found = await executable(file, user);
    if (found === 'ok') return file;
    const why = { missing: 'no such file or directory', denied: 'permission denied', directory: 'is a directory' }[found];
    throw invalid(`error starting process '${cmd}': ${file}: ${why}`);
  }
  for (const dir of (searchPath || FALLBACK_PATH).split(':')) {
    if (!dir || !path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, cmd);
    if ((await executable(candidate, user)) === 'ok') return candidate;
  }
  throw invalid(`error starting process '${cmd}': executable file not found in $PATH`);
}
