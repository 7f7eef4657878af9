import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';

export type LogRecord = Record<string, unknown>;

export interface JsonLog {
  /** Every JSON line seen so far, in order. */
  logs: LogRecord[];
  /** Resolves with the first record (seen already or later) that passes `test`. */
  waitFor(test: (rec: LogRecord) => boolean, what: string, timeoutMs?: number): Promise<LogRecord>;
}

export interface JsonLogOptions {
  /** Called with every line, JSON or not (e.g. to keep the whole output for error messages). */
  onLine?: (line: string) => void;
  /** What to add to an error message: the process's output so far. */
  context: () => string;
  /** Settles when the process ends: pending waits then fail with this description of the exit. */
  exited?: Promise<string>;
  timeoutMs?: number;
}

/** Follows a daemon's JSON-lines log (pino) so a test can wait for a particular record. */
export function watchJsonLog(stdout: Readable, opts: JsonLogOptions): JsonLog {
  const logs: LogRecord[] = [];
  const waiters = new Set<{ test: (rec: LogRecord) => boolean; resolve: (rec: LogRecord) => void }>();
  createInterface({ input: stdout }).on('line', (line) => {
    opts.onLine?.(line);
    let rec: LogRecord;
    try {
      rec = JSON.parse(line) as LogRecord;
    } catch {
      return;
    }
    logs.push(rec);
    for (const w of waiters) {
      if (w.test(rec)) {
        waiters.delete(w);
        w.resolve(rec);
      }
    }
  });
  const waitFor = (test: (rec: LogRecord) => boolean, what: string, timeoutMs = opts.timeoutMs ?? 15_000) => {
    const seen = logs.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogRecord>((resolve, reject) => {
      const w = { test, resolve };
      waiters.add(w);
      const timer = setTimeout(() => {
        if (waiters.delete(w)) reject(new Error(`timed out waiting for log '${what}'; output:\n${opts.context()}`));
      }, timeoutMs);
      void opts.exited?.then((how) => {
        clearTimeout(timer);
        if (waiters.delete(w)) reject(new Error(`${how} before '${what}'; output:\n${opts.context()}`));
      });
    });
  };
  return { logs, waitFor };
}
