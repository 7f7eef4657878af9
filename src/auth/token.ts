/** Constant-time string equality (hashing first hides the length of the secret). */
export function safeEqual(given: string | null | undefined, expected: string): boolean {
  if (given === null || given === undefined) return false;
  // node:crypto loads here, on the first token check, not at start (~20 ms and ~3 MiB that a daemon
  // without a token never needs).
  const { createHash, timingSafeEqual } = process.getBuiltinModule('node:crypto');
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given.length === expected.length;
}
