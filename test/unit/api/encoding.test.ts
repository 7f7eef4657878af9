import { describe, expect, it } from 'vitest';
import { negotiateEncoding } from '../../../src/api/encoding.js';
import { parseInitBody, timestampNs } from '../../../src/api/init.js';
import { contentDisposition } from '../../../src/system/mime.js';

describe('negotiateEncoding', () => {
  it('defaults to identity and picks gzip when accepted', () => {
    expect(negotiateEncoding(undefined)).toBe('identity');
    expect(negotiateEncoding('gzip, deflate')).toBe('gzip');
    expect(negotiateEncoding('GZIP;q=0.5')).toBe('gzip');
    expect(negotiateEncoding('br')).toBe('identity');
  });
  it('honours refusals', () => {
    expect(negotiateEncoding('gzip;q=0')).toBe('identity');
    expect(negotiateEncoding('br, identity;q=0')).toBeUndefined();
    expect(negotiateEncoding('*;q=0')).toBeUndefined();
    expect(negotiateEncoding('*')).toBe('gzip');
  });
});

describe('parseInitBody', () => {
  it('accepts envd fields', () => {
    expect(parseInitBody({ envVars: { A: 'b' }, accessToken: 't', timestamp: '2026-01-01T00:00:00Z' })).toMatchObject({ accessToken: 't' });
  });
  it('names wrong types and an empty token', () => {
    expect(parseInitBody([])).toBe('body must be a JSON object');
    expect(parseInitBody({ envVars: { A: 1 } })).toBe('envVars.A must be a string');
    expect(parseInitBody({ accessToken: '' })).toBe('empty token not allowed');
    expect(parseInitBody({ timestamp: 'yesterday' })).toContain('RFC 3339');
  });
  it('keeps sub-millisecond digits of timestamps', () => {
    expect(timestampNs('2026-01-01T00:00:00.000000002Z') - timestampNs('2026-01-01T00:00:00.000000001Z')).toBe(1n);
    expect(timestampNs('2026-01-01T00:00:00.000002Z') - timestampNs('2026-01-01T00:00:00.000001Z')).toBe(1000n);
  });
});

describe('contentDisposition', () => {
  it('quotes only when needed', () => {
    expect(contentDisposition('a.txt')).toBe('inline; filename=a.txt');
    expect(contentDisposition('my doc.pdf')).toBe('inline; filename="my doc.pdf"');
    expect(contentDisposition('文.txt')).toBe("inline; filename*=utf-8''%E6%96%87.txt");
  });
});
