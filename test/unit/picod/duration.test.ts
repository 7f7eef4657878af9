import { describe, expect, it } from 'vitest';
import { DurationError, formatGoDuration, parseGoDuration } from '../../../src/picod/duration.js';

describe('Go durations', () => {
  it('parses what time.ParseDuration parses', () => {
    expect(parseGoDuration('30s')).toBe(30_000_000_000n);
    expect(parseGoDuration('500ms')).toBe(500_000_000n);
    expect(parseGoDuration('1m')).toBe(60_000_000_000n);
    expect(parseGoDuration('1h2m3.5s')).toBe(3_723_500_000_000n);
    expect(parseGoDuration('.5s')).toBe(500_000_000n);
    expect(parseGoDuration('1.s')).toBe(1_000_000_000n);
    expect(parseGoDuration('-2ms')).toBe(-2_000_000n);
    expect(parseGoDuration('+3us')).toBe(3_000n);
    expect(parseGoDuration('4µs')).toBe(4_000n);
    expect(parseGoDuration('5μs')).toBe(5_000n);
    expect(parseGoDuration('6ns')).toBe(6n);
    expect(parseGoDuration('0')).toBe(0n);
  });
  it('refuses what Go refuses, in Go words', () => {
    expect(() => parseGoDuration('')).toThrow('time: invalid duration ""');
    expect(() => parseGoDuration('abc')).toThrow('time: invalid duration "abc"');
    expect(() => parseGoDuration('30')).toThrow('time: missing unit in duration "30"');
    expect(() => parseGoDuration('3x')).toThrow('time: unknown unit "x" in duration "3x"');
    expect(() => parseGoDuration('.s')).toThrow(DurationError);
    expect(() => parseGoDuration('1s ')).toThrow(DurationError);
    expect(() => parseGoDuration('9999999999h')).toThrow('time: invalid duration "9999999999h"');
  });
  it('formats as Duration.String()', () => {
    expect(formatGoDuration(0n)).toBe('0s');
    expect(formatGoDuration(999n)).toBe('999ns');
    expect(formatGoDuration(1_500n)).toBe('1.5µs');
    expect(formatGoDuration(304_456_445n)).toBe('304.456445ms');
    expect(formatGoDuration(1_000_000_000n)).toBe('1s');
    expect(formatGoDuration(3_723_500_000_000n)).toBe('1h2m3.5s');
    expect(formatGoDuration(62_000_000_001n)).toBe('1m2.000000001s');
  });
});
