import net from 'node:net';
import os from 'node:os';
import type { Logger } from '../log.js';
import { isLoopbackAddress, loopbackListeners, readTcpTables, type LoopbackListener } from './proc-net-tcp.js';
import { relaySources, type RelaySources } from './relays.js';

/** The sandbox's addresses that the outside can reach: every non-loopback address except IPv6 link-local. */
export function externalAddresses(interfaces = os.networkInterfaces()): string[] {
  const out: string[] = [];
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      if (a.internal || isLoopbackAddress(a.address)) continue;
      if (a.family === 'IPv6' && /^fe[89ab]/i.test(a.address)) continue; // link-local needs a scope id
      out.push(a.address);
    }
  }
  return out;
}

export interface PortForwarderOptions {
  logger: Logger;
  /** Ports never forwarded: the daemon's own. */
  excludePorts: readonly number[];
  /** How often to look for listeners (envd scans every second). */
  intervalMs?: number;
  /** The loopback-only listeners right now (default: /proc/net/tcp and tcp6). */
  listeners?: () => Promise<LoopbackListener[]>;
  /** The addresses to forward from (default: the external interfaces' addresses, read at every scan). */
  addresses?: () => string[];
  /** Where the relays' outgoing connections are recorded (default: the process-wide registry the gateway reads). */
  relays?: RelaySources;
}

/** One listening socket on an external address that relays each connection to a loopback listener. */
class Forward {
  readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    readonly from: string,
    public target: LoopbackListener,
    private readonly logger: Logger,
    private readonly relays: RelaySources,
  ) {
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => this.relay(client));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.from, port: this.target.port, exclusive: true }, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.logger.warn({ err, from: this.from, port: this.target.port }, 'port forward listener failed'));
        resolve();
      });
    });
  }

  private relay(client: net.Socket): void {
    const upstream = net.connect({ host: this.target.address, port: this.target.port, allowHalfOpen: true, noDelay: true });
    // Registered before the piped client bytes are written (they wait for 'connect' too), so the server
    // sees the relay recorded by the time it reads a request.
    let local: { address: string | undefined; port: number | undefined } | undefined;
    upstream.once('connect', () => {
      local = { address: upstream.localAddress, port: upstream.localPort };
      this.relays.add(local.address, local.port);
    });
    upstream.once('close', () => {
      if (local) this.relays.remove(local.address, local.port);
    });
    this.sockets.add(client);
    this.sockets.add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    // Half-closes travel through pipe(); an error or a full close on either side ends both.
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Stops accepting; with `dropConnections` also cuts the connections being relayed. */
  close(dropConnections: boolean): Promise<void> {
    if (dropConnections) for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Makes services that listen only on loopback reachable on the sandbox's external addresses, on the same
 * port, as envd does for a microVM: each scan reads the LISTEN sockets, opens a relay for every new
 * loopback-only port and closes the relays whose listener went away.
 */
export class PortForwarder {
  private readonly forwards = new Map<string, Forward>();
  /** Binds that failed, by key, with the error code last logged (so a busy port is not logged every second). */
  private readonly failed = new Map<string, string>();
  private readonly exclude: Set<number>;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly opts: PortForwarderOptions) {
    this.exclude = new Set(opts.excludePorts);
  }

  start(): void {
    const tick = () => {
      this.scan().catch((err: unknown) => this.opts.logger.warn({ err }, 'port forward scan failed'));
    };
    tick();
    this.timer = setInterval(tick, this.opts.intervalMs ?? 1000);
    this.timer.unref();
  }

  /** The relays open now. */
  list(): { from: string; port: number; to: string }[] {
    return [...this.forwards.values()].map((f) => ({ from: f.from, port: f.target.port, to: f.target.address }));
  }

  /**
   * The loopback-only listeners in /proc/net/tcp{,6}. The relays' own listeners on the external addresses
   * are left out: counted, they made their port look served on a wider address, so the next scan closed
   * the relay and the one after opened it again, and the port was unreachable every other second.
   */
  private async loopbackOnly(): Promise<LoopbackListener[]> {
    const own = new Set([...this.forwards.values()].map((f) => keyOf(canonical(f.from), f.target.port)));
    const entries = (await readTcpTables()).filter((e) => !own.has(keyOf(canonical(e.address), e.port)));
    return loopbackListeners(entries);
  }

  /** One pass: open relays for new listeners, close those whose listener is gone. Passes never overlap. */
  scan(): Promise<void> {
    this.scanning ??= this.scanOnce().finally(() => (this.scanning = undefined));
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    if (this.closed) return;
    const listeners = (await (this.opts.listeners ?? (() => this.loopbackOnly()))()).filter((l) => !this.exclude.has(l.port));
    const addresses = (this.opts.addresses ?? externalAddresses)();
    const wanted = new Map<string, { from: string; target: LoopbackListener }>();
    for (const target of listeners) {
      for (const from of addresses) wanted.set(keyOf(from, target.port), { from, target });
    }

    for (const [key, fwd] of this.forwards) {
      const want = wanted.get(key);
      if (want) {
        fwd.target = want.target;
        continue;
      }
      this.forwards.delete(key);
      await fwd.close(false);
      this.opts.logger.info({ port: fwd.target.port, from: fwd.from }, 'port forward stopped: the listener went away');
    }
    for (const key of this.failed.keys()) if (!wanted.has(key)) this.failed.delete(key);

    for (const [key, { from, target }] of wanted) {
      if (this.forwards.has(key) || this.closed) continue;
      const fwd = new Forward(from, target, this.opts.logger, this.opts.relays ?? relaySources);
      try {
        await fwd.listen();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'ERROR';
        if (this.failed.get(key) !== code) {
          this.opts.logger.warn({ port: target.port, from, code }, 'cannot forward port: binding the external address failed; will retry');
        }
        this.failed.set(key, code);
        continue;
      }
      if (this.closed) {
        await fwd.close(true);
        return;
      }
      this.failed.delete(key);
      this.forwards.set(key, fwd);
      this.opts.logger.info({ port: target.port, from, to: target.address }, 'port forward started');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.scanning?.catch(() => undefined);
    const all = [...this.forwards.values()];
    this.forwards.clear();
    await Promise.all(all.map((f) => f.close(true)));
  }
}

function keyOf(from: string, port: number): string {
  return `${from}|${port}`;
}

/** An address in one text form (IPv6 compressed and lower case), so that /proc's and os's forms compare. */
function canonical(address: string): string {
  return address.includes(':') ? new URL(`http://[${address}]`).hostname.slice(1, -1) : address;
}
