import http from 'node:http';
import type http2 from 'node:http2';
import net from 'node:net';
import type { Logger } from './log.js';

export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** How long an idle connection stays open (HTTP/1.1 keep-alive, HTTP/2 session without activity). */
const IDLE_MS = 65_000;

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** A first chunk that could only begin the HTTP/2 connection preface means prior-knowledge h2c. */
function looksLikeH2(chunk: Buffer): boolean {
  const n = Math.min(chunk.length, H2_PREFACE.length);
  return n >= 3 && chunk.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
}

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** What a Host header may hold (RFC 3986 reg-name, IP literal, port), as Go's httpguts checks it. */
const VALID_HOST = /^[A-Za-z0-9.\-_~!$&'()*+,;=%:[\]]+$/;

/** `host:port` of the socket's local end, the authority a request without a Host header was sent to. */
function localAuthority(socket: net.Socket | undefined): string {
  const address = socket?.localAddress ?? '127.0.0.1';
  const host = address.includes(':') ? `[${address}]` : address;
  return socket?.localPort ? `${host}:${socket.localPort}` : host;
}

function answer(res: Res, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(message) });
  res.end(message);
}

/**
 * Gives a request a usable authority before any framework sees it: Connect and Hono build a URL from
 * the Host header (or :authority) and throw without one, as HTTP/1.0 and `Host:` (empty) allow. Such a
 * request was sent to this socket, so its local address stands in, as Go's server takes it. A Host no
 * URL can hold is refused with 400, as Go does. Returns false when the request was answered here.
 */
function ensureAuthority(req: Req, res: Res): boolean {
  // The request target: `OPTIONS *` is answered as Go's server does (200), and a target that is
  // neither a path nor an absolute URL cannot be routed.
  const target = req.url ?? '';
  if (target === '*') {
    answer(res, req.method === 'OPTIONS' ? 200 : 400, '');
    return false;
  }
  if (!target.startsWith('/') && !/^https?:\/\//i.test(target)) {
    answer(res, 400, 'malformed request target\n');
    return false;
  }
  const h2 = 'stream' in req;
  const given = h2 ? req.headers[':authority'] ?? req.headers.host : req.headers.host;
  if (given === undefined || given === '') {
    const authority = localAuthority(req.socket as net.Socket | undefined);
    if (h2) req.headers[':authority'] = authority;
    else req.headers.host = authority;
    return true;
  }
  if (!VALID_HOST.test(given) || !URL.canParse(`http://${given}/`)) {
    answer(res, 400, 'malformed Host header\n');
    return false;
  }
  return true;
}

/**
 * An h2 stream reset while a write waits for flow control never completes that write (no callback,
 * no 'drain'), so whoever awaits it (Connect's response writer, and the stream generator behind it)
 * would wait forever and be leaked. Failing the waiting write lets them unwind and clean up.
 */
function settleWritesOnReset(res: http2.Http2ServerResponse): void {
  res.once('close', () => {
    if (res.writableFinished || res.listenerCount('error') === 0) return;
    // Node's own code for a write to a destroyed stream, which Connect takes as the client hanging up.
    res.emit('error', Object.assign(new Error('the client reset the stream'), { code: 'ERR_STREAM_DESTROYED' }));
  });
}

/** A handler that threw: logged, and its request answered 500 (or its stream reset, once headers went out). */
function failed(logger: Logger | undefined, err: unknown, req: Req, res: Res): void {
  logger?.error({ err, method: req.method, url: req.url }, 'request handler failed');
  try {
    answer(res, 500, 'internal error\n');
  } catch {
    res.destroy();
  }
}

/**
 * One TCP server that serves HTTP/1.1 and cleartext HTTP/2 (prior knowledge) into the same handler:
 * the first bytes of each connection decide which protocol server takes it.
 */
export class DualProtocolServer {
  readonly h1: http.Server;
  private h2server: http2.Http2Server | undefined;
  private handler: NodeHandler;
  private logger: Logger | undefined;
  private readonly listeners: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();

  constructor(handler: NodeHandler, logger?: Logger) {
    this.handler = handler;
    this.logger = logger;
    this.h1 = http.createServer({ keepAliveTimeout: IDLE_MS, requestTimeout: 0 }, this.guarded);
  }

  /**
   * Hands every later request to `handler`, its failures logged to `logger`: the daemon taking over the
   * servers its first stage bound (src/early.ts). Connections already open stay open.
   */
  serve(handler: NodeHandler, logger?: Logger): void {
    this.handler = handler;
    this.logger = logger;
  }

  /** Runs the current handler on a request that already has its authority (no exception escapes). */
  dispatch(req: Req, res: Res): void {
    try {
      const result = this.handler(req, res) as unknown;
      if (result instanceof Promise) result.catch((err: unknown) => failed(this.logger, err, req, res));
    } catch (err) {
      failed(this.logger, err, req, res);
    }
  }

  /**
   * The handler as the servers call it: an authority first, and no exception escapes to the process
   * (one bad request must never take down the daemon that serves a whole sandbox).
   */
  private readonly guarded = (req: Req, res: Res): void => {
    try {
      if ('stream' in req) settleWritesOnReset(res as http2.Http2ServerResponse);
      if (!ensureAuthority(req, res)) return;
    } catch (err) {
      failed(this.logger, err, req, res);
      return;
    }
    this.dispatch(req, res);
  };

  /**
   * The h2c server, made on the first HTTP/2 connection: node:http2 (with the TLS code it pulls in) costs
   * ~60 ms and ~12 MiB to load, which a daemon that only ever sees HTTP/1.1 clients never pays.
   */
  get h2(): http2.Http2Server {
    if (this.h2server) return this.h2server;
    const h2 = process.getBuiltinModule('node:http2').createServer(
      { settings: { initialWindowSize: 4 * 1024 * 1024, maxConcurrentStreams: 1000 } },
      this.guarded as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    // A larger connection window keeps big streams from stalling on WINDOW_UPDATE round trips.
    h2.on('session', (session) => {
      session.setLocalWindowSize(16 * 1024 * 1024);
      // After a malformed frame nghttp2 sends GOAWAY but Node keeps the socket open, and nothing
      // would ever close it: an idle session goes after the keep-alive time HTTP/1.1 gets.
      session.setTimeout(IDLE_MS, () => session.destroy());
    });
    return (this.h2server = h2);
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
