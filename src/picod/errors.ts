import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** A refusal in PicoD's error shape: `{"error": …, "code": <status>}` (plus `detail` where PicoD adds one). */
export class PicodError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly detail?: string,
    /** PicoD's 413 body has no `code`. */
    readonly withCode = true,
  ) {
    super(message);
  }
}

export function picodJson(c: Context, err: PicodError): Response {
  const body: Record<string, unknown> = { error: err.message };
  if (err.withCode) body.code = err.status;
  if (err.detail !== undefined) body.detail = err.detail;
  return c.json(body, err.status);
}

/** Go's RFC 3339 with nanoseconds, as `time.Time` marshals to JSON (in UTC). */
export function rfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const base = new Date(ms).toISOString().slice(0, 19);
  const frac = String(((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n).padStart(9, '0').replace(/0+$/, '');
  return `${base}${frac ? `.${frac}` : ''}Z`;
}
