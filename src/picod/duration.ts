/** Nanoseconds per unit, as Go's time.ParseDuration accepts them. */
const UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/** Go's limit: a Duration is an int64 of nanoseconds. */
const MAX_NS = (1n << 63n) - 1n;

export class DurationError extends Error {}

const quote = (s: string): string => JSON.stringify(s);

/**
 * A duration string as Go's `time.ParseDuration` reads it ("30s", "1.5h", "1m30s", "-2ms", "0"),
 * in nanoseconds; errors carry Go's own wording.
 */
export function parseGoDuration(input: string): bigint {
  let s = input;
  let negative = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    negative = s.startsWith('-');
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') throw new DurationError(`time: invalid duration ${quote(input)}`);
  let total = 0n;
  while (s !== '') {
    const num = /^(\d*)(?:\.(\d*))?/.exec(s)!;
    const [whole = '', frac] = [num[1], num[2]];
    if (whole === '' && (frac === undefined || frac === '')) throw new DurationError(`time: invalid duration ${quote(input)}`);
    s = s.slice(num[0].length);
    const unitMatch = /^[^\d.]*/.exec(s)!;
    const unit = unitMatch[0];
    if (unit === '') throw new DurationError(`time: missing unit in duration ${quote(input)}`);
    const scale = UNITS[unit];
    if (scale === undefined) throw new DurationError(`time: unknown unit ${quote(unit)} in duration ${quote(input)}`);
    s = s.slice(unit.length);
    let ns = BigInt(whole || '0') * scale;
    if (frac) ns += (BigInt(frac) * scale) / 10n ** BigInt(frac.length);
    total += ns;
    if (total > MAX_NS + (negative ? 1n : 0n)) throw new DurationError(`time: invalid duration ${quote(input)}`);
  }
  return negative ? -total : total;
}

function trimFraction(digits: string): string {
  const t = digits.replace(/0+$/, '');
  return t === '' ? '' : `.${t}`;
}

/** Go's `Duration.String()`: "1h2m3.5s", "1.5ms", "0s". */
export function formatGoDuration(nsIn: bigint): string {
  if (nsIn === 0n) return '0s';
  const sign = nsIn < 0n ? '-' : '';
  const ns = nsIn < 0n ? -nsIn : nsIn;
  if (ns < 1_000n) return `${sign}${ns}ns`;
  if (ns < 1_000_000n) return `${sign}${ns / 1_000n}${trimFraction(String(ns % 1_000n).padStart(3, '0'))}µs`;
  if (ns < 1_000_000_000n) return `${sign}${ns / 1_000_000n}${trimFraction(String(ns % 1_000_000n).padStart(6, '0'))}ms`;
  const h = ns / 3_600_000_000_000n;
  const m = (ns / 60_000_000_000n) % 60n;
  const s = (ns / 1_000_000_000n) % 60n;
  const frac = trimFraction(String(ns % 1_000_000_000n).padStart(9, '0'));
  if (h > 0n) return `${sign}${h}h${m}m${s}${frac}s`;
  if (m > 0n) return `${sign}${m}m${s}${frac}s`;
  return `${sign}${s}${frac}s`;
}
