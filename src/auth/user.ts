import { Code, ConnectError } from '@connectrpc/connect';
import type { DaemonState } from '../state.js';
import { UserNotFoundError, type User, type UserDb } from '../system/users.js';

/**
 * The username in `Authorization: Basic base64(user:password)`, or undefined when the header
 * is absent or not Basic (then the default user applies, as envd).
 */
export function basicAuthUsername(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^basic\s+(\S+)\s*$/i.exec(header);
  if (!m || !m[1]) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return decoded.slice(0, colon);
}

/** Error for an unknown user; Connect answers it as `unauthenticated`, HTTP as 401. */
export function invalidUser(name: string): ConnectError {
  return new ConnectError(`invalid username: '${name}'`, Code.Unauthenticated);
}

/**
 * The user a request acts as: the Basic-auth user when given, else the daemon's default user.
 * Throws a ConnectError(unauthenticated) for an unknown name.
 */
export function requestUser(authorization: string | null | undefined, state: DaemonState, users: UserDb): User {
  const named = basicAuthUsername(authorization);
  if (named !== undefined) {
    try {
      return users.lookup(named);
    } catch (err) {
      if (err instanceof UserNotFoundError) throw invalidUser(named);
      throw err;
    }
  }
  if (!state.defaultUser) throw new ConnectError('no user specified', Code.Unauthenticated);
  try {
    return users.lookup(state.defaultUser);
  } catch (err) {
    if (err instanceof UserNotFoundError) {
      throw new ConnectError(`invalid default user: '${state.defaultUser}'`, Code.Unauthenticated);
    }
    throw err;
  }
}
