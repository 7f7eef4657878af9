import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkSignature, signatureFor } from '../../../src/auth/signature.js';

describe('signatureFor', () => {
  it('is v1_ plus unpadded base64 of sha256(path:op:user:token)', () => {
    const raw = createHash('sha256').update('/a/b:read:user:tok').digest('base64').replace(/=+$/, '');
    expect(signatureFor('/a/b', 'read', 'user', 'tok')).toBe(`v1_${raw}`);
    expect(signatureFor('/a/b', 'read', 'user', 'tok')).not.toContain('=');
  });

  it('appends the expiration when given', () => {
    const raw = createHash('sha256').update('/x:write::tok:1700000000').digest('base64').replace(/=+$/, '');
    expect(signatureFor('/x', 'write', '', 'tok', 1700000000)).toBe(`v1_${raw}`);
  });
});

describe('checkSignature', () => {
  const base = { path: '/f', operation: 'read' as const, username: undefined, expiration: undefined, headerToken: undefined };

  it('allows everything when no token is set', () => {
    expect(checkSignature(undefined, { ...base, signature: undefined })).toBeUndefined();
  });

  it('accepts the right signature and a matching header token', () => {
    expect(checkSignature('t', { ...base, signature: signatureFor('/f', 'read', '', 't') })).toBeUndefined();
    expect(checkSignature('t', { ...base, signature: undefined, headerToken: 't' })).toBeUndefined();
  });

  it('names what is wrong', () => {
    expect(checkSignature('t', { ...base, signature: undefined })).toBe('missing signature query parameter');
    expect(checkSignature('t', { ...base, signature: 'v1_nope' })).toBe('invalid signature');
    expect(checkSignature('t', { ...base, signature: undefined, headerToken: 'x' })).toBe('access token present in header but does not match');
    expect(checkSignature('t', { ...base, signature: signatureFor('/f', 'read', 'root', 't') })).toBe('invalid signature');
  });

  it('refuses an expired signature but accepts one expiring this second', () => {
    const now = 1_800_000_000;
    const sig = (exp: number) => signatureFor('/f', 'read', '', 't', exp);
    expect(checkSignature('t', { ...base, signature: sig(now - 1), expiration: now - 1 }, now)).toBe('signature is already expired');
    expect(checkSignature('t', { ...base, signature: sig(now), expiration: now }, now)).toBeUndefined();
  });
});
