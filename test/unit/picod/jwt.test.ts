import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KeyError, loadRouterKey, TokenError, verifyRouterToken } from '../../../src/picod/jwt.js';
import { hmacWithPublicKey, routerClaims, routerKeys, signToken, unsignedToken } from '../../integration/picod-support.js';

describe('router tokens', () => {
  const { privateKey, publicPem } = routerKeys();
  const key = loadRouterKey(publicPem);
  const now = Math.floor(Date.now() / 1000);

  it('verifies RS256, RS384 and RS512 and returns the claims', () => {
    for (const alg of ['RS256', 'RS384', 'RS512'] as const) {
      expect(verifyRouterToken(signToken(privateKey, routerClaims(), alg), key)).toMatchObject({ iss: 'agentcube-router', session_id: 'session-1' });
    }
  });
  it('applies one minute of leeway to exp, iat and nbf', () => {
    const token = signToken(privateKey, { iat: now, exp: now + 10, nbf: now });
    expect(() => verifyRouterToken(token, key, now + 69)).not.toThrow();
    expect(() => verifyRouterToken(token, key, now + 70)).toThrow('token is expired');
    expect(() => verifyRouterToken(token, key, now - 59)).not.toThrow();
    expect(() => verifyRouterToken(token, key, now - 61)).toThrow('token used before issued');
    expect(() => verifyRouterToken(signToken(privateKey, { exp: now + 600, nbf: now + 120 }), key, now)).toThrow('token is not valid yet');
  });
  it('refuses none, HMAC, tampered payloads and non-numeric dates', () => {
    expect(() => verifyRouterToken(unsignedToken(), key)).toThrow(TokenError);
    expect(() => verifyRouterToken(hmacWithPublicKey(publicPem), key)).toThrow('unexpected signing method: HS256');
    const [h, , s] = signToken(privateKey).split('.');
    const forged = Buffer.from(JSON.stringify(routerClaims({ session_id: 'other' }))).toString('base64url');
    expect(() => verifyRouterToken(`${h}.${forged}.${s}`, key)).toThrow('token signature is invalid');
    expect(() => verifyRouterToken(signToken(privateKey, { exp: String(now + 60) }), key)).toThrow('exp has invalid type');
  });
  it('loads only RSA public keys', () => {
    expect(() => loadRouterKey(undefined)).toThrow(KeyError);
    expect(() => loadRouterKey('not pem')).toThrow('failed to decode PEM block');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(() => loadRouterKey(ec)).toThrow('key is not an RSA public key');
    const priv = createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' })).export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(() => loadRouterKey(priv)).toThrow('not a public key');
  });
});
