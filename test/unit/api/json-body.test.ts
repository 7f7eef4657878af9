import { describe, expect, it } from 'vitest';
import { parseJsonBody, rfc3339Problem } from '../../../src/api/json-body.js';

describe('rfc3339Problem', () => {
  it('accepts RFC 3339 date-times with fractions and offsets', () => {
    for (const ts of ['2026-12-01T09:00:00Z', '2026-12-01t09:00:00z', '2024-02-29T23:59:59.123456789+05:30', '2026-01-31T00:00:00-00:00']) {
      expect(rfc3339Problem(ts), ts).toBeUndefined();
    }
  });

  it('refuses other formats and fields out of range', () => {
    for (const ts of ['Tue, 01 Dec 2026 09:00:00 GMT', '2026-12-01 09:00:00Z', '2026-12-01T09:00Z', '2026-12-01T09:00:00', '2023-02-29T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T00:60:00Z', '2026-01-01T00:00:00+24:00', '']) {
      expect(rfc3339Problem(ts), ts).toBeDefined();
    }
  });
});

describe('parseJsonBody', () => {
  it('parses UTF-8 JSON', () => {
    expect(parseJsonBody(Buffer.from('{"path":"/tmp/é"}'))).toEqual({ path: '/tmp/é' });
  });

  it('refuses a byte-order mark and bytes that are not UTF-8', () => {
    expect(() => parseJsonBody(Buffer.from('\uFEFF{}'))).toThrow(/byte-order mark/);
    expect(() => parseJsonBody(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))).toThrow(/UTF-8/);
  });
});
