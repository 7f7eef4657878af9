import { createPublicKey, verify, type KeyObject } from 'node:crypto';

/** The signing algorithms PicoD accepts (golang-jwt's SigningMethodRSA family); everything else is refused. */
const HASH_OF: Record<string, string> = { RS256: 'sha256', RS384: 'sha384', RS512: 'sha512' };

/** Clock skew tolerated on exp, nbf and iat, as PicoD (jwt.WithLeeway(time.Minute)). */
export const LEEWAY_SECONDS = 60;

export class KeyError extends Error {}

/** Why a token was refused: `reason` goes into PicoD's `detail` ("JWT verification failed: …"). */
export class TokenError extends Error {}

/**
 * The router's public key from PEM, as PicoD reads `PICOD_AUTH_PUBLIC_KEY`: a `PUBLIC KEY` (PKIX)
 * block holding an RSA key. (`RSA PUBLIC KEY`, PKCS#1, is accepted too; Node reads both.)
 */
export function loadRouterKey(pem: string | undefined): KeyObject {
  if (pem === undefined || pem.trim() === '') throw new KeyError('environment variable PICOD_AUTH_PUBLIC_KEY is not set');
  const label = /-----BEGIN ([A-Z ]+)-----/.exec(pem)?.[1];
  if (label === undefined) throw new KeyError('failed to decode PEM block from PICOD_AUTH_PUBLIC_KEY');
  if (label !== 'PUBLIC KEY' && label !== 'RSA PUBLIC KEY') throw new KeyError(`PICOD_AUTH_PUBLIC_KEY holds a '${label}' block, not a public key`);
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new KeyError(`failed to parse public key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'rsa') throw new KeyError(`key is not an RSA public key (it is ${key.asymmetricKeyType ?? 'unknown'})`);
  return key;
}

const SEGMENT = /^[A-Za-z0-9_-]*$/;

function decodeJson(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new TokenError(`token is malformed: could not JSON decode ${what}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TokenError(`token is malformed: ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

function numericClaim(claims: Record<string, unknown>, name: string): number | undefined {
  const v = claims[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TokenError(`token has invalid claims: ${name} has invalid type`);
  return v;
}

/**
 * Verifies a compact JWS the way PicoD's middleware does (golang-jwt v5 with
 * WithExpirationRequired, WithIssuedAt and a one-minute leeway): RS256/384/512 only, the signature
 * against `key`, `exp` present and not past, `iat` and `nbf` (when present) not in the future.
 * Returns the claims; throws TokenError with golang-jwt's wording otherwise.
 */
export function verifyRouterToken(token: string, key: KeyObject, nowSeconds = Date.now() / 1000): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3) throw new TokenError('token is malformed: token contains an invalid number of segments');
  const [h, p, s] = parts as [string, string, string];
  if (![h, p, s].every((seg) => SEGMENT.test(seg))) throw new TokenError('token is malformed: could not base64 decode a segment');
  const header = decodeJson(h, 'header');
  const claims = decodeJson(p, 'claim');
  const alg = header.alg;
  if (typeof alg !== 'string' || alg === '') throw new TokenError('token is unverifiable: signing method (alg) is unspecified');
  const hash = HASH_OF[alg];
  if (hash === undefined) throw new TokenError(`token is unverifiable: error while executing keyfunc: unexpected signing method: ${alg}`);
  const signature = Buffer.from(s, 'base64url');
  if (!verify(hash, Buffer.from(`${h}.${p}`), key, signature)) throw new TokenError('token signature is invalid: crypto/rsa: verification error');

  const exp = numericClaim(claims, 'exp');
  const iat = numericClaim(claims, 'iat');
  const nbf = numericClaim(claims, 'nbf');
  if (exp === undefined) throw new TokenError('token has invalid claims: token is missing required claim: exp claim is required');
  if (nowSeconds >= exp + LEEWAY_SECONDS) throw new TokenError('token has invalid claims: token is expired');
  if (iat !== undefined && nowSeconds < iat - LEEWAY_SECONDS) throw new TokenError('token has invalid claims: token used before issued');
  if (nbf !== undefined && nowSeconds < nbf - LEEWAY_SECONDS) throw new TokenError('token has invalid claims: token is not valid yet');
  return claims;
}
