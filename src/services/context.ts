import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { DaemonState } from '../state.js';
import type { UserDb } from '../system/users.js';

/** What every RPC service and HTTP route needs from the daemon. */
export interface ServiceDeps {
  config: Config;
  state: DaemonState;
  users: UserDb;
  logger: Logger;
}

/**
 * What the unary RPCs read of their call: the request's headers. connect-node's HandlerContext is
 * one; so is the call of the lean unary path (unary.ts).
 */
export interface RpcCall {
  readonly requestHeader: { get(name: string): string | null };
}
