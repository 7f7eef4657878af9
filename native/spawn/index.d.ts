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
 * Starts the child (clone with CLONE_VM|CLONE_VFORK: returns once it has exec'd). A failure before
 * the exec throws an Error with `code` ('ENOENT', 'EACCES', ...), `errno`, `syscall` (the failed step)
 * and `path`; the child is reaped. `onExit` runs once, on the loop, with the exit code (or -1) and the
 * number of the signal that ended the child (or 0).
 */
export function spawn(options: SpawnOptions, onExit: (code: number, signal: number) => void): SpawnedChild;
