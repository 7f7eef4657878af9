import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';

/** An answer as the tests compare it: status, headers (less the per-connection ones) and body. */
export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/**
 * A lean RPC handler and connect-node on one loopback server: the lean handler takes what it serves
 * (returns true), connect-node the rest, and each request served is counted on its side.
 */
export class LeanBesideConnect {
  readonly served = { lean: 0, connect: 0 };
  url = '';
  private server: http.Server | undefined;

  async start(lean: (req: http.IncomingMessage, res: http.ServerResponse) => boolean, rpc: Handler): Promise<void> {
    this.server = http.createServer((req, res) => {
      if (lean(req, res)) this.served.lean++;
      else {
        this.served.connect++;
        rpc(req, res);
      }
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  post(path: string, body: Buffer | string, headers: Record<string, string>, verb = 'POST'): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = http.request(`${this.url}/${path}`, { method: verb, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const { date: _date, connection: _c, 'keep-alive': _k, ...rest } = res.headers;
          resolve({ status: res.statusCode!, headers: rest, body: Buffer.concat(chunks) });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** The same request answered by the lean handler and, with `; charset=utf-8` on its content type (which only connect-node takes), by connect-node. */
  async bothWays(path: string, body: Buffer | string, headers: Record<string, string>, type: string): Promise<[Answer, Answer]> {
    const before = { ...this.served };
    const lean = await this.post(path, body, { ...headers, 'content-type': type });
    const viaConnect = await this.post(path, body, { ...headers, 'content-type': `${type}; charset=utf-8` });
    expect(this.served.lean - before.lean, 'requests the lean handler served').toBe(1);
    expect(this.served.connect - before.connect, 'requests connect-node served').toBe(1);
    return [lean, viaConnect];
  }
}
