import type http from 'node:http';
import type http2 from 'node:http2';
import type { Config } from './config.js';
import { answerPlainHealth, isPlainHealth } from './health.js';
import { DualProtocolServer, type NodeHandler } from './listen.js';
import type { Logger } from './log.js';

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/**
 * The daemon's first stage (src/main.ts): every face's port bound, and the envd face's plain `/health`
 * answered, before the rest of the daemon (src/run.ts: the logger, survival, the faces' handlers) is compiled
 * and run. What else arrives meanwhile waits unread, as a request waits for a face's code loading on first use
 * (src/lazy.ts), and is served once the daemon takes over. This module and what it imports are all that
 * runs before the first listen: node:http and our own few lines (test/unit/startup-graph.test.ts holds it so).
 */

export interface Bound {
  port: number;
  bound: string[];
  failed: { host: string; error: string }[];
}

/** One face's servers, listening before the face's handler exists. */
export class EarlyFace {
  readonly server: DualProtocolServer;
  bound: Bound = { port: 0, bound: [], failed: [] };
  private waiting: [Req, Res][] | undefined = [];

  /** `answersHealth`: the envd face's plain /health (one with an Origin gets CORS headers: it waits too). */
  constructor(answersHealth: boolean) {
    this.server = new DualProtocolServer((req, res) => {
      if (answersHealth && req.headers.origin === undefined && isPlainHealth(req)) answerPlainHealth(res);
      else this.waiting?.push([req, res]);
    });
  }

  async listen(port: number, hosts: string[]): Promise<Bound> {
    return (this.bound = await this.server.listen(port, hosts));
  }

  /** The daemon takes over: each request that waited, then every later one, goes to `handler`. */
  serve(handler: NodeHandler, logger: Logger): void {
    this.server.serve(handler, logger);
    const waiting = this.waiting ?? [];
    this.waiting = undefined;
    for (const [req, res] of waiting) this.server.dispatch(req, res);
  }

  close(): Promise<void> {
    this.waiting = undefined;
    return this.server.close();
  }
}

export type EarlyFaces = Map<'envd' | 'gateway' | 'picod', EarlyFace>;

/** Binds every face the configuration turns on, envd first, at the configured hosts. */
export async function listenEarly(config: Config): Promise<EarlyFaces> {
  const faces: EarlyFaces = new Map();
  const wanted = [['envd', config.port], ['gateway', config.gatewayPort], ['picod', config.picodPort]] as const;
  try {
    for (const [name, port] of wanted) {
      if (name !== 'envd' && port === 0) continue;
      const face = new EarlyFace(name === 'envd');
      faces.set(name, face);
      await face.listen(port, config.hosts);
    }
  } catch (err) {
    await Promise.all([...faces.values()].map((f) => f.close()));
    throw err;
  }
  return faces;
}

/**
 * Resolves after the event loop's next poll for I/O and the one after it: a connection that arrived is
 * accepted in the first, its request read (and a plain /health answered) in the second. Between its
 * blocking steps the daemon's load gives the loop these turns, so that a probe waits for one step at most.
 */
export function ioTurns(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}
