import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** An HTTP error answered as envd's JSON error body. */
export class HttpError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
  ) {
    super(message);
  }
}

/** envd's error body: `{"code": <status>, "message": "..."}`. */
export function jsonError(c: Context, status: ContentfulStatusCode, message: string): Response {
  c.header('X-Content-Type-Options', 'nosniff');
  return c.json({ code: status, message }, status);
}
