import { constants } from 'node:os';

/** How a process ended, in the shape of envd's end event. */
export interface ExitInfo {
  /** The exit code, or -1 when a signal ended the process (as Go's ProcessState.ExitCode). */
  exitCode: number;
  /** True when the process called exit; false when a signal ended it. */
  exited: boolean;
  /** Go's ProcessState.String(): `exit status 3`, `signal: killed`. */
  status: string;
  /** Set for every ending but exit status 0, with the status text (Go's exec.ExitError). */
  error?: string;
}

// Descriptions as Go's syscall package prints signals, so status strings match envd's.
const SIGNAL_TEXT: Record<number, string> = {
  1: 'hangup',
  2: 'interrupt',
  3: 'quit',
  4: 'illegal instruction',
  5: 'trace/breakpoint trap',
  6: 'aborted',
  7: 'bus error',
  8: 'floating point exception',
  9: 'killed',
  10: 'user defined signal 1',
  11: 'segmentation fault',
  12: 'user defined signal 2',
  13: 'broken pipe',
  14: 'alarm clock',
  15: 'terminated',
  16: 'stack fault',
  17: 'child exited',
  18: 'continued',
  19: 'stopped (signal)',
  20: 'stopped',
  21: 'stopped (tty input)',
  22: 'stopped (tty output)',
  23: 'urgent I/O condition',
  24: 'CPU time limit exceeded',
  25: 'file size limit exceeded',
  26: 'virtual timer expired',
  27: 'profiling timer expired',
  28: 'window changed',
  29: 'I/O possible',
  30: 'power failure',
  31: 'bad system call',
};

/** The number of a signal given by name (`SIGKILL`) or number; undefined when unknown. */
export function signalNumber(signal: NodeJS.Signals | number): number | undefined {
  if (typeof signal === 'number') return signal;
  return (constants.signals as Record<string, number>)[signal];
}

export function signalText(signal: number): string {
  return SIGNAL_TEXT[signal] ?? `signal ${signal}`;
}

/** The end of a process from what Node (or node-pty) reports: an exit code or a terminating signal. */
export function exitInfo(code: number | null, signal: NodeJS.Signals | number | null | undefined): ExitInfo {
  const sig = signal === null || signal === undefined || signal === 0 ? undefined : signalNumber(signal);
  if (sig !== undefined) {
    const status = `signal: ${signalText(sig)}`;
    return { exitCode: -1, exited: false, status, error: status };
  }
  const exitCode = code ?? -1;
  const status = `exit status ${exitCode}`;
  return exitCode === 0 ? { exitCode, exited: true, status } : { exitCode, exited: true, status, error: status };
}
