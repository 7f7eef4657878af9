import { createHash } from 'node:crypto';
import { safeEqual } from './token.js';

export type SignedOperation = 'read' | 'write';

/** envd's v1 URL signature: unpadded base64 of sha256(`path:operation:username:token[:expiration]`). */
export function signatureFor(
  path: string,
  operation: SignedOperation,
  username: string,
  token: string,
  expiration?: number,
): string {
  let raw = `${path}:${operation}:${username}:${token}`;
  if (expiration !== undefined) raw += `:${expiration}`;
  return 'v1_' + createHash('sha256').update(raw).digest('base64').replace(/=+$/, '');
}

export interface SignatureCheck {
  path: string;
  operation: SignedOperation;
  username: string | undefined;
  signature: string | undefined;
  expiration: number | undefined;
  /** The X-Access-Token header, when sent: a matching one makes the signature unnecessary. */
  headerToken: string | undefined;
}

/** Returns undefined when access is allowed, else the reason it is not (answered as 401). */
export function checkSignature(token: string | undefined, req: SignatureCheck, nowSeconds = Math.floor(Date.now() / 1000)): string | undefined {
  if (token === undefined) return undefined;
  if (req.headerToken) {
    return safeEqual(req.headerToken, token) ? undefined : 'access token present in header but does not match';
  }
  if (!req.signature) return 'missing signature query parameter';
  const expected = signatureFor(req.path, req.operation, req.username ?? '', token, req.expiration);
  if (!safeEqual(req.signature, expected)) return 'invalid signature';
  if (req.expiration !== undefined && req.expiration < nowSeconds) return 'signature is already expired';
  return undefined;
}
