import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** What went wrong, independent of HTTP; the REST layer maps it to a status. */
export type GatewayErrorKind = 'invalid' | 'not_found' | 'conflict' | 'upstream' | 'too_large';

export class GatewayError extends Error {
  constructor(
    readonly kind: GatewayErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** Status codes as AgentScope's gateway answers them (every upstream failure is a 500 there). */
export const STATUS_OF: Record<GatewayErrorKind, ContentfulStatusCode> = {
  invalid: 400,
  not_found: 404,
  conflict: 409,
  upstream: 500,
  too_large: 413,
};

/** Quotes a value the way AgentScope's messages do (Python `repr` of a string). */
export function quote(s: string): string {
  if (s.includes("'") && !s.includes('"')) return `"${s}"`;
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** An error's message with its causes (fetch hides the useful part in `cause`). */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    const msg = e instanceof Error ? e.message : String(e);
    if (msg && !parts.includes(msg)) parts.push(msg);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(': ') || 'unknown error';
}
