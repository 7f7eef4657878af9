import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** A first chunk that could only begin the HTTP/2 connection preface means prior-knowledge h2c. */
function looksLikeH2(chunk: Buffer): boolean {
  const n = Math.min(chunk.length, H2_PREFACE.length);
  return n >= 3 && chunk.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
}

/**
 * One TCP server that serves HTTP/1.1 and cleartext HTTP/2 (prior knowledge) into the same handler:
 * the first bytes of each connection decide which protocol server takes it.
 */
export class DualProtocolServer {
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  private readonly listeners: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();

  constructor(handler: NodeHandler) {
    this.h1 = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, handler as http.RequestListener);
    this.h2 = http2.createServer(
      { settings: { initialWindowSize: 4 * 1024 * 1024, maxConcurrentStreams: 1000 } },
      handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    // A larger connection window keeps big streams from stalling on WINDOW_UPDATE round trips.
    this.h2.on('session', (session) => session.setLocalWindowSize(16 * 1024 * 1024));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const sniff = () => {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return; // wait for the next 'readable'
      socket.off('readable', sniff);
      socket.unshift(chunk);
      // Hand over on the next tick, once dropping the 'readable' listener has settled the stream's
      // flowing state: handed over at once, a resume scheduled by that removal races the request's
      // first pause, the socket keeps reading while paused, and an upload the handler reads slowly
      // piles up in memory (a 1 GiB upload grew the daemon by ~850 MiB). No I/O runs before
      // nextTick callbacks, so the unshifted bytes still come first.
      const server = looksLikeH2(chunk) ? this.h2 : this.h1;
      process.nextTick(() => server.emit('connection', socket));
    };
    socket.on('readable', sniff);
  }

  /**
   * Binds every host on one port; with port 0 the first bind picks it and the rest reuse it.
   * Returns the port and the hosts actually bound (a host whose address family is missing is skipped).
   */
  async listen(port: number, hosts: string[]): Promise<{ port: number; bound: string[]; failed: { host: string; error: string }[] }> {
    const bound: string[] = [];
    const failed: { host: string; error: string }[] = [];
    for (const host of hosts) {
      const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
      try {
        port = await new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port, host, ipv6Only: host.includes(':') && host !== '::' }, () => {
            server.off('error', reject);
            const addr = server.address();
            resolve(typeof addr === 'object' && addr ? addr.port : port);
          });
        });
        this.listeners.push(server);
        bound.push(host);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        // Port conflicts are fatal; a missing address family (no IPv6) is not, once one host is bound.
        if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || bound.length === 0 && host === hosts[hosts.length - 1]) throw err;
        failed.push({ host, error: e.message });
      }
    }
    if (bound.length === 0) throw new Error(`could not bind any of ${hosts.join(', ')}`);
    return { port, bound, failed };
  }

  close(): Promise<void> {
    const closing = this.listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve())));
    for (const s of this.sockets) s.destroy();
    return Promise.all(closing).then(() => undefined);
  }
}
