import { describe, expect, it } from 'vitest';
import { toBase64 } from '../../../../src/services/process/base64.js';

const bytes = new Uint8Array([0xfb, 0xff, 0x01, 0x02]);

describe('toBase64', () => {
  it('encodes with padding by default and honours omitPadding', () => {
    expect(toBase64(bytes)).toBe('+/8BAg==');
    expect(toBase64(bytes, { omitPadding: true })).toBe('+/8BAg');
  });

  it('encodes the url alphabet, padded unless asked not to', () => {
    expect(toBase64(bytes, { alphabet: 'base64url' })).toBe('-_8BAg==');
    expect(toBase64(bytes, { alphabet: 'base64url', omitPadding: true })).toBe('-_8BAg');
  });

  it('encodes only the view, not its whole buffer', () => {
    const big = new Uint8Array([9, 9, 0x68, 0x69, 9]);
    expect(toBase64(big.subarray(2, 4))).toBe(Buffer.from('hi').toString('base64'));
  });

  it('is installed as Uint8Array.prototype.toBase64 where the runtime lacks it', () => {
    const fn = (Uint8Array.prototype as Uint8Array & { toBase64?: () => string }).toBase64;
    expect(typeof fn).toBe('function');
    expect(fn!.call(new Uint8Array([1, 2, 3]))).toBe('AQID');
  });
});
