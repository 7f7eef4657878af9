import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
/** `{"path":"/tmp/<0xff>"}`: a path that is not UTF-8. */
const notUtf8Path = Buffer.concat([Buffer.from('{"path":"/tmp/'), Buffer.from([0xff]), Buffer.from('"}')]);

describe('input envd refuses is refused', () => {
  let d: RunningDaemon;
  let file: string;
  beforeAll(async () => {
    d = await startDaemon();
    file = path.join(mkdtempSync(path.join(os.tmpdir(), 'sandboxd-strict-')), 'a.txt');
    writeFileSync(file, 'a');
  });
  afterAll(async () => {
    await d?.stop();
  });

  const post = (route: string, body: Buffer, type = 'application/json') =>
    fetch(`${d.url}${route}`, { method: 'POST', headers: { 'Content-Type': type, 'Connect-Protocol-Version': '1' }, body });

  it('/init answers 400 for a timestamp that is not RFC 3339', async () => {
    // Every timestamp names "now": a lenient daemon that took one would not set the machine's clock
    // (it does when the time is far off, and the clock is not namespaced). Ranges: unit tests.
    const now = new Date();
    const iso = now.toISOString();
    for (const timestamp of [now.toUTCString(), iso.replace('T', ' '), iso.slice(0, -1), String(now.getTime())]) {
      const res = await post('/init', json({ timestamp }));
      expect(res.status, timestamp).toBe(400);
    }
    expect((await post('/init', json({ timestamp: new Date().toISOString() }))).status).toBe(204);
  });

  it('/init answers 400 for a body with a byte-order mark or bytes that are not UTF-8', async () => {
    expect((await post('/init', Buffer.concat([BOM, json({ envVars: { A: 'b' } })]))).status).toBe(400);
    expect((await post('/init', Buffer.concat([Buffer.from('{"envVars":{"A":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')]))).status).toBe(400);
    expect((await post('/init', json({ envVars: { A: 'b' } }))).status).toBe(204);
  });

  it('/files/compose answers 400 for a body with a byte-order mark or a path that is not UTF-8', async () => {
    const body = { source_paths: [file], destination: `${file}.out` };
    expect((await post('/files/compose', Buffer.concat([BOM, json(body)]))).status).toBe(400);
    const bad = Buffer.concat([Buffer.from(`{"source_paths":["${file}"],"destination":"${file}.`), Buffer.from([0xff]), Buffer.from('"}')]);
    expect((await post('/files/compose', bad)).status).toBe(400);
  });

  it('Connect JSON answers invalid_argument (400) for a BOM or a path that is not UTF-8', async () => {
    for (const body of [Buffer.concat([BOM, json({ path: '/tmp' })]), notUtf8Path]) {
      const res = await post('/filesystem.Filesystem/Stat', body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('invalid_argument');
    }
    expect((await post('/filesystem.Filesystem/Stat', json({ path: '/tmp' }))).status).toBe(200);
  });

  it('/files answers 400 for a repeated path, username, signature or signature_expiration', async () => {
    const p = encodeURIComponent(file);
    for (const query of [`path=${p}&path=${p}`, `path=${p}&username=root&username=root`, `path=${p}&signature=a&signature=b`, `path=${p}&signature_expiration=1&signature_expiration=2`]) {
      const get = await fetch(`${d.url}/files?${query}`);
      expect(get.status, `GET ${query}`).toBe(400);
      const form = new FormData();
      form.append('file', new Blob(['x']), 'x');
      const upload = await fetch(`${d.url}/files?${query}`, { method: 'POST', body: form });
      expect(upload.status, `POST ${query}`).toBe(400);
    }
    expect((await fetch(`${d.url}/files?path=${p}`)).status).toBe(200);
  });
});
