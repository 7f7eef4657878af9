import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { lazyHandler } from '../../src/lazy.js';
import type { NodeHandler } from '../../src/listen.js';

const logger = pino({ level: 'silent' });
const servers: http.Server[] = [];

async function serve(handler: NodeHandler): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer(handler as http.RequestListener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Resolves once `server` has seen `n` requests. */
function requestsSeen(server: http.Server, n: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    server.on('request', () => ++seen === n && resolve());
  });
}

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((resolve) => s.close(resolve));
    }),
  );
});

/** A handler that echoes the request body, so a body that waited while the code loaded is seen whole. */
const echo: NodeHandler = (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => res.end(Buffer.concat(chunks)));
};

describe('a lazily loaded handler', () => {
  it('loads once, on the first request, and serves every request that came while it loaded, bodies intact', async () => {
    let loads = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { url, server } = await serve(
      lazyHandler('echo', logger, async () => {
        loads++;
        await gate;
        return echo;
      }),
    );
    const arrived = requestsSeen(server, 3);
    const body = 'x'.repeat(256 * 1024);
    const answers = Promise.all([1, 2, 3].map((i) => fetch(url, { method: 'POST', body: `${i}${body}` }).then((r) => r.text())));
    await arrived; // all three wait on the one load
    expect(loads).toBe(1);
    release();
    expect(await answers).toEqual([`1${body}`, `2${body}`, `3${body}`]);
    expect(await fetch(url, { method: 'POST', body: 'later' }).then((r) => r.text())).toBe('later');
    expect(loads).toBe(1);
  });

  it('answers 500 when its code fails to load, and tries again on the next request', async () => {
    let loads = 0;
    const { url } = await serve(
      lazyHandler('flaky', logger, async () => {
        if (++loads === 1) throw new Error('cannot load');
        return echo;
      }),
    );
    const failed = await fetch(url, { method: 'POST', body: 'a' });
    expect(failed.status).toBe(500);
    expect(await failed.text()).toBe('internal error\n');
    expect(await fetch(url, { method: 'POST', body: 'b' }).then((r) => r.text())).toBe('b');
    expect(loads).toBe(2);
  });
});
