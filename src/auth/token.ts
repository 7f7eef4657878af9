import { createHash, timingSafeEqual } from 'node:crypto';

/** Constant-time string equality (hashing first hides the length of the secret). */
export function safeEqual(given: string | null | undefined, expected: string): boolean {
  if (given === null || given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given.length === expected.length;
}
