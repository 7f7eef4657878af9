import type { Context } from 'hono';
import { checkSignature, type SignedOperation } from '../auth/signature.js';
import type { ServiceDeps } from '../services/context.js';
import { PathError, resolvePath } from '../system/paths.js';
import { UserNotFoundError, type User } from '../system/users.js';
import { HttpError } from './errors.js';

const SINGLE_VALUE_PARAMS = ['path', 'username', 'signature', 'signature_expiration'];

/**
 * Who a `/files` request acts as and on which path: checks the signature (when a token is set
 * and no valid X-Access-Token came), then the `username` parameter (else the default user).
 */
export function filesAccess(c: Context, deps: ServiceDeps, operation: SignedOperation, rawPath: string | undefined): { user: User; path: string } {
  // Each is a single-value parameter in envd's API: its generated binding refuses a repeated one.
  for (const name of SINGLE_VALUE_PARAMS) {
    if ((c.req.queries(name)?.length ?? 0) > 1) throw new HttpError(400, `Invalid format for parameter ${name}: multiple values for single value parameter '${name}'`);
  }
  const username = c.req.query('username');
  const expirationText = c.req.query('signature_expiration');
  let expiration: number | undefined;
  if (expirationText !== undefined) {
    expiration = Number(expirationText);
    if (!/^-?\d+$/.test(expirationText) || !Number.isSafeInteger(expiration)) {
      throw new HttpError(400, `Invalid format for parameter signature_expiration: '${expirationText}' is not an integer`);
    }
  }
  const denied = checkSignature(deps.state.accessToken, {
    path: rawPath ?? '',
    operation,
    username,
    signature: c.req.query('signature'),
    expiration,
    headerToken: c.req.header('x-access-token'),
  });
  if (denied) throw new HttpError(401, denied);

  const name = username ?? deps.state.defaultUser;
  if (!name) throw new HttpError(400, 'username not provided');
  let user: User;
  try {
    user = deps.users.lookup(name);
  } catch (err) {
    if (err instanceof UserNotFoundError) throw new HttpError(401, `error looking up user '${name}': user: unknown user ${name}`);
    throw err;
  }
  try {
    return { user, path: resolvePath(rawPath ?? '', user, deps.state.defaultWorkdir) };
  } catch (err) {
    if (err instanceof PathError) throw new HttpError(400, `error expanding and resolving path '${rawPath ?? ''}': ${err.message}`);
    throw err;
  }
}
