/**
 * Strict JSON request bodies, as envd's Go decoders are: a byte-order mark is not JSON (Go answers
 * 400), and bytes that are not UTF-8 are refused rather than turned into U+FFFD, which would
 * silently change the paths they name.
 */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The decoding options Connect's JSON codec takes, for the same rules on RPC bodies. */
export const STRICT_TEXT_DECODER = UTF8;

/** The body decoded as UTF-8 text; throws a readable reason when it is not UTF-8 or starts with a BOM. */
export function strictUtf8(bytes: ArrayBuffer | Uint8Array): string {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new Error('body is not valid UTF-8');
  }
  if (text.charCodeAt(0) === 0xfeff) throw new Error('body starts with a byte-order mark');
  return text;
}

/** JSON.parse of a strictly decoded body. */
export function parseJsonBody(bytes: ArrayBuffer | Uint8Array): unknown {
  return JSON.parse(strictUtf8(bytes));
}

/**
 * RFC 3339 date-time as Go's time.Time reads JSON: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, with
 * every field in range (no Feb 30, no hour 24). Returns the reason it is not, or undefined.
 */
export function rfc3339Problem(ts: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$/.exec(ts);
  if (!m) return `timestamp '${ts}' is not an RFC 3339 date-time`;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const offsetOk = m[9] === undefined || (Number(m[9]) < 24 && Number(m[10]) < 60);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59 || !offsetOk) {
    return `timestamp '${ts}' is out of range`;
  }
  return undefined;
}
