import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { EarlyFace } from '../../src/early.js';
import type { NodeHandler } from '../../src/listen.js';

const logger = pino({ level: 'silent' });
const faces: EarlyFace[] = [];

async function face(answersHealth: boolean): Promise<{ face: EarlyFace; url: string; parked: () => number }> {
  const f = new EarlyFace(answersHealth);
  faces.push(f);
  const { port } = await f.listen(0, ['127.0.0.1']);
  let parked = 0;
  f.server.h1.on('request', () => parked++);
  return { face: f, url: `http://127.0.0.1:${port}`, parked: () => parked };
}

/** Resolves once the face's server has seen `n` requests in all. */
async function seen(parked: () => number, n: number): Promise<void> {
  while (parked() < n) await new Promise((r) => setImmediate(r));
}

afterEach(async () => {
  await Promise.all(faces.splice(0).map((f) => f.close()));
});

/** A handler that echoes method, path and body, so a body that waited is seen whole. */
const echo: NodeHandler = (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`));
};

describe('a face bound by the first stage', () => {
  it('answers a plain /health (GET or HEAD, any query) 204 before the daemon takes over', async () => {
    const { url } = await face(true);
    for (const [method, path] of [['GET', '/health'], ['HEAD', '/health'], ['GET', '/health?probe=1']] as const) {
      const res = await fetch(`${url}${path}`, { method });
      expect(res.status).toBe(204);
      expect(res.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('holds every other request, a /health with credentials or an Origin too, and hands them to the daemon in order, bodies whole', async () => {
    const { face: f, url, parked } = await face(true);
    const answers = [
      fetch(`${url}/init`, { method: 'POST', body: 'x'.repeat(200_000) }),
      fetch(`${url}/health`, { headers: { authorization: 'Basic dXNlcjo=' } }),
      fetch(`${url}/health`, { headers: { origin: 'http://example.test' } }),
      fetch(`${url}/health`, { method: 'POST' }),
    ].map((p) => p.then(async (r) => `${r.status} ${await r.text()}`));
    await seen(parked, 4);
    // Nothing was answered yet: a plain /health on its own connection still is, right away.
    expect((await fetch(`${url}/health`)).status).toBe(204);
    let settled = 0;
    for (const a of answers) void a.then(() => settled++);
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(0);
    f.serve(echo, logger);
    expect(await Promise.all(answers)).toEqual([`200 POST /init ${'x'.repeat(200_000)}`, '200 GET /health ', '200 GET /health ', '200 POST /health ']);
    // After the takeover the daemon's handler answers everything, /health too.
    expect(await (await fetch(`${url}/health`)).text()).toBe('GET /health ');
  });

  it('of the gateway or PicoD answers nothing itself', async () => {
    const { face: f, url, parked } = await face(false);
    const answer = fetch(`${url}/health`).then((r) => r.text());
    await seen(parked, 1);
    f.serve(echo, logger);
    expect(await answer).toBe('GET /health ');
  });

  it('drops the requests it held when it is closed (its face did not start)', async () => {
    const { face: f, url, parked } = await face(false);
    const answer = fetch(`${url}/api/execute`, { method: 'POST', body: '{}' });
    await seen(parked, 1);
    await f.close();
    await expect(answer).rejects.toThrow();
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });

  it('logs and answers 500 when the daemon\'s handler throws on a request that waited', async () => {
    const { face: f, url, parked } = await face(false);
    const answer = fetch(`${url}/x`);
    await seen(parked, 1);
    f.serve(() => {
      throw new Error('boom');
    }, logger);
    const res = await answer;
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('internal error\n');
  });
});
