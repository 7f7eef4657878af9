/** What the child is started with; everything optional is left as the daemon has it. */
export interface SpawnOptions {
  /** The program, an absolute path (no PATH search); a file without `#!` runs under /bin/sh, as execvp. */
  file: string;
  /** argv, argv[0] included. */
  argv: string[];
  /** The whole environment, `KEY=value` strings. */
  envp: string[];
  cwd?: string;
  /** A pipe for stdin; otherwise the child reads /dev/null. */
  stdin?: boolean;
  /** A new session, so the child leads its own process group. */
  setsid?: boolean;
  /** Switch to uid/gid with exactly these supplementary groups (all three, or none). */
  uid?: number;
  gid?: number;
  groups?: number[];
  /** setpriority(PRIO_PROCESS, 0, nice); best effort, as coreutils' nice. */
  nice?: number;
  /** Written to /proc/self/oom_score_adj; best effort. */
  oomScoreAdj?: number;
  /** A cgroup.procs file the child moves itself into; best effort. */
  cgroupProcs?: string;
}

/** A best-effort step that failed in the child (it still ran). */
export interface SpawnWarning {
  step: 'oom_score_adj' | 'cgroup' | 'nice';
  code: string;
}

export interface SpawnedChild {
  pid: number;
  /** The parent's ends, non-blocking and close-on-exec; stdin is -1 unless asked for. */
  stdin: number;
  stdout: number;
  stderr: number;
  warnings: SpawnWarning[];
}

/**
 * Starts the child: clone(CLONE_VM|CLONE_VFORK) on a thread-pool thread, so the loop runs on while
 * the child sets itself up and execs. Options it cannot use throw a TypeError at once. Then
 * `onSpawned` runs on the loop: with the child once it has exec'd, or with an Error carrying `code`
 * ('ENOENT', 'EACCES', ...), `errno`, `syscall` (the failed step) and `path` when a step before the
 * exec failed (the child is reaped; `onExit` never runs). `onExit` runs once, on the loop, with the
 * exit code (-1 after a signal) and the number of the signal that ended the child (or 0).
 */
export function spawn(
  options: SpawnOptions,
  onExit: (code: number, signal: number) => void,
  onSpawned: (error: NodeJS.ErrnoException | undefined, child?: SpawnedChild) => void,
): void;

/**
 * glibc's malloc_trim(0): hands the free pages of every malloc arena back to the kernel. Returns
 * whether any memory was released.
 */
export function trim(): boolean;

/** An inotify instance (inotify.c): an fd polled on the loop, which never keeps the loop alive. */
export type InotifyHandle = { readonly __inotify: unique symbol };

/**
 * Opens an inotify instance. `onEvents` runs on the loop once per read batch with the events
 * flattened, four entries each: wd, mask (IN_* bits as the kernel wrote them), cookie (pairs
 * IN_MOVED_FROM with IN_MOVED_TO), name ('' for an event on the watched directory itself). If
 * reading fails the array ends with one more entry, -errno, and no events follow.
 */
export function inotifyOpen(onEvents: (events: (number | string)[]) => void): InotifyHandle;

/**
 * Watches a directory for what envd's fsnotify asks for (create, modify, attrib, delete, moves, the
 * directory's own delete and move), IN_ONLYDIR; returns its wd. Throws an Error with `code`
 * ('ENOSPC' at the watch limit, 'ENOENT', 'ENOTDIR', ...), `errno`, `syscall` and `path`.
 */
export function inotifyAdd(handle: InotifyHandle, path: string): number;

/** Drops a watch (IN_IGNORED follows); one the kernel already dropped is no error. */
export function inotifyRemove(handle: InotifyHandle, wd: number): void;

/** Stops reading and closes the fd with all its watches; idempotent. */
export function inotifyClose(handle: InotifyHandle): void;

/**
 * Sends `count` bytes of `fileFd` from `offset` to the stream socket `socketFd` with sendfile(2)
 * (native/spawn/src/sendfile.c). Both descriptors are dup()ed at the call, so the caller may close
 * its own at any time; the socket must be non-blocking. Each call runs on the thread pool; while the
 * socket is full the transfer waits on the loop for it to take more. `onDone` runs once, on the loop,
 * with the bytes sent and an Error carrying `code` unless all went: 'EOF' when the file ended first,
 * 'ECANCELED' after `cancel`, or the socket's ('EPIPE', 'ECONNRESET', ...). The returned function
 * cancels; `onDone` may then run within that call. Bad arguments throw a TypeError at once.
 */
export function sendFile(
  socketFd: number,
  fileFd: number,
  offset: number,
  count: number,
  onDone: (error: NodeJS.ErrnoException | undefined, sent: number) => void,
): () => void;

/**
 * A small file's whole landing in one thread-pool hop (writefile.c): open(`tmp`, O_CREAT|O_EXCL,
 * `createMode` before the umask), fchown(uid, gid), fchmod(`mode`) unless it is -1, write all of
 * `chunks` (at most 1 MiB), rename over `dest`, close. `onDone` runs on the loop with undefined, or
 * with an Error carrying `code` ('EEXIST', 'ENOSPC', ...; 'EOF' when a write took nothing), `errno`,
 * `syscall` (the step that failed: 'open', 'fchown', 'fchmod', 'write' or 'rename') and `path`; after
 * a failure past the open the temporary file is gone. Bad arguments throw a TypeError at once.
 */
export function writeSmallFile(
  tmp: string,
  dest: string,
  uid: number,
  gid: number,
  mode: number,
  createMode: number,
  chunks: Buffer[],
  onDone: (error: NodeJS.ErrnoException | undefined) => void,
): void;
