import { Code, ConnectError } from '@connectrpc/connect';

/** The errno code of a Node fs error, if any. */
export function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The message of an error without its stack. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A Connect error whose message is `what: cause`, as envd wraps Go errors. */
export function wrapped(code: Code, what: string, cause: unknown): ConnectError {
  return new ConnectError(`${what}: ${messageOf(cause)}`, code);
}
