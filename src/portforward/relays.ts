/**
 * The local ends of the connections the port forwarder opens to loopback listeners. Those connections come
 * from 127.0.0.1 or ::1 but carry a client from outside, so a server in this process (the gateway) asks here
 * before it trusts a loopback peer.
 */
export class RelaySources {
  private readonly open = new Map<string, number>();
  private readonly closed = new Map<string, NodeJS.Timeout>();

  /**
   * @param graceMs how long a relay counts after it closed: the server may still be reading what the relay
   *   delivered before it went away (a request followed at once by a close). The kernel keeps a closed
   *   connection's address pair in TIME_WAIT for 60 s, so no new local client reuses it sooner.
   */
  constructor(private readonly graceMs = 60_000) {}

  /** Call once the relay's outgoing connection is up (before it writes anything). */
  add(address: string | undefined, port: number | undefined): void {
    if (address === undefined || port === undefined) return;
    const key = keyOf(address, port);
    clearTimeout(this.closed.get(key));
    this.closed.delete(key);
    this.open.set(key, (this.open.get(key) ?? 0) + 1);
  }

  /** Call when the relay's outgoing connection has closed. */
  remove(address: string | undefined, port: number | undefined): void {
    if (address === undefined || port === undefined) return;
    const key = keyOf(address, port);
    const n = (this.open.get(key) ?? 0) - 1;
    if (n > 0) {
      this.open.set(key, n);
      return;
    }
    this.open.delete(key);
    const timer = setTimeout(() => this.closed.delete(key), this.graceMs);
    timer.unref();
    this.closed.set(key, timer);
  }

  /** Whether a peer at this address and port is one of the forwarder's relays. */
  has(address: string | undefined, port: number | undefined): boolean {
    if (address === undefined || port === undefined) return false;
    const key = keyOf(address, port);
    return this.open.has(key) || this.closed.has(key);
  }
}

function keyOf(address: string, port: number): string {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return `${v4}|${port}`;
}

/** The process's relays: every PortForwarder records into this, the gateway reads it. */
export const relaySources = new RelaySources();
