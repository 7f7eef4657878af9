import { describe, expect, it } from 'vitest';
import { keepaliveIntervalMs } from '../../../src/services/keepalive.js';

const h = (v?: string) => new Headers(v === undefined ? {} : { 'Keepalive-Ping-Interval': v });

describe('keepaliveIntervalMs', () => {
  it('takes whole positive seconds from Keepalive-Ping-Interval', () => {
    expect(keepaliveIntervalMs(h('50'))).toBe(50_000);
    expect(keepaliveIntervalMs(h(' 1 '))).toBe(1_000);
  });
  it("falls back to envd's 90 s for missing, zero or malformed values", () => {
    for (const v of [undefined, '', '0', '-5', '1.5', '5e1', 'soon', '99999999999999999999']) {
      expect(keepaliveIntervalMs(h(v)), String(v)).toBe(90_000);
    }
  });
});
