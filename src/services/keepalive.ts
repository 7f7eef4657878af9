/** envd's pacing when a stream does not ask for one (seconds). */
export const DEFAULT_KEEPALIVE_SECONDS = 90;

/**
 * Interval between keepalive events of a server stream (WatchDir, Start, Connect), from
 * `Keepalive-Ping-Interval` (whole positive seconds, as the SDK sends 50); missing or invalid values
 * fall back to envd's default.
 */
export function keepaliveIntervalMs(headers: Pick<Headers, 'get'>): number {
  const text = headers.get('keepalive-ping-interval')?.trim() ?? '';
  const seconds = /^\d+$/.test(text) ? Number(text) : 0;
  return (Number.isSafeInteger(seconds) && seconds > 0 ? seconds : DEFAULT_KEEPALIVE_SECONDS) * 1000;
}
