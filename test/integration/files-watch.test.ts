import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { compressionGzip, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import type { Transport } from '@connectrpc/connect';
import { FilesystemEventType, InvalidArgumentError, NotFoundError, type FilesystemEvent, type Sandbox } from 'e2b';
import { EventType, Filesystem } from '../../src/gen/filesystem/filesystem_pb.js';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startSdkDaemon } from '../helpers/sdk.js';
import { inotifyWatches, scratchDir } from './files-support.js';

/** Resolves with the first event that matches, or rejects after 10 s. */
function waitFor(events: FilesystemEvent[], match: (e: FilesystemEvent) => boolean): Promise<FilesystemEvent> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = (): void => {
      const hit = events.find(match);
      if (hit) return resolve(hit);
      if (Date.now() - started > 10_000) return reject(new Error(`no matching event among ${JSON.stringify(events)}`));
      setTimeout(check, 20);
    };
    check();
  });
}

async function eventually(check: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

/** Every suite runs on both readers: the addon's inotify reader, and Node's fs.watch. */
const READERS: [string, NodeJS.ProcessEnv][] = [
  ["the addon's inotify reader", {}],
  ['fs.watch', { SANDBOXD_NATIVE_WATCH: '0' }],
];

describe.each(READERS)('watching directories (%s)', (_reader, env) => {
  let daemon: RunningDaemon;
  let sandbox: Sandbox;
  let root: string;
  const client = () => createClient(Filesystem, createConnectTransport({ baseUrl: daemon.url, httpVersion: '1.1' }));

  beforeAll(async () => {
    root = scratchDir('watch');
    ({ daemon, sandbox } = await startSdkDaemon({ env }));
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('sees files written through the SDK as envd shows them: create, chmod, write for a new file, chmod, write for an overwrite', async () => {
    const dir = path.join(root, 'plain');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'existing.txt'), 'before');
    const events: FilesystemEvent[] = [];
    const handle = await sandbox.files.watchDir(dir, (e) => void events.push(e));
    try {
      await sandbox.files.write(path.join(dir, 'existing.txt'), 'after');
      await waitFor(events, (e) => e.type === FilesystemEventType.WRITE && e.name === 'existing.txt');
      await sandbox.files.write(path.join(dir, 'fresh.txt'), 'new');
      await waitFor(events, (e) => e.type === FilesystemEventType.WRITE && e.name === 'fresh.txt');
      const names = events.map((e) => `${e.type} ${e.name}`);
      expect(names).toEqual(['chmod existing.txt', 'write existing.txt', 'create fresh.txt', 'chmod fresh.txt', 'write fresh.txt']);
    } finally {
      await handle.stop();
    }
  });

  it('sees each file of a multipart form as envd shows it, and no temporary name', async () => {
    const dir = path.join(root, 'form');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'existing.txt'), 'before');
    const events: FilesystemEvent[] = [];
    const handle = await sandbox.files.watchDir(dir, (e) => void events.push(e));
    try {
      const names = ['a.txt', 'b.txt', 'c.txt', 'existing.txt', 'd.txt'];
      await sandbox.files.writeFiles(names.map((n) => ({ path: path.join(dir, n), data: `form ${n}` })));
      expect(await eventually(() => names.every((n) => events.some((e) => e.type === FilesystemEventType.WRITE && e.name === n)))).toBe(true);
      for (const n of names) {
        const seen = events.filter((e) => e.name === n).map((e) => e.type);
        const want = n === 'existing.txt' ? ['chmod', 'write'] : ['create', 'chmod', 'write'];
        expect(seen, n).toEqual(want);
      }
      expect(events.filter((e) => !names.includes(e.name))).toEqual([]);
    } finally {
      await handle.stop();
    }
  });

  it('watches recursively, including directories made after it started', async () => {
    const dir = path.join(root, 'recursive');
    mkdirSync(path.join(dir, 'nested'), { recursive: true });
    const events: FilesystemEvent[] = [];
    const handle = await sandbox.files.watchDir(dir, (e) => void events.push(e), { recursive: true });
    try {
      await sandbox.files.write(path.join(dir, 'nested/deep.txt'), 'x');
      await waitFor(events, (e) => e.type === FilesystemEventType.WRITE && e.name === 'nested/deep.txt');
      await sandbox.files.makeDir(path.join(dir, 'later'));
      await waitFor(events, (e) => e.type === FilesystemEventType.CREATE && e.name === 'later');
      await sandbox.files.write(path.join(dir, 'later/file.txt'), 'y');
      await waitFor(events, (e) => e.type === FilesystemEventType.WRITE && e.name === 'later/file.txt');
      await sandbox.files.rename(path.join(dir, 'later/file.txt'), path.join(dir, 'later/renamed.txt'));
      await waitFor(events, (e) => e.type === FilesystemEventType.RENAME && e.name === 'later/file.txt');
      await waitFor(events, (e) => e.type === FilesystemEventType.CREATE && e.name === 'later/renamed.txt');
      await sandbox.files.remove(path.join(dir, 'later'));
      await waitFor(events, (e) => e.type === FilesystemEventType.REMOVE && e.name === 'later');
    } finally {
      await handle.stop();
    }
  });

  it('does not see nested changes without recursive', async () => {
    const dir = path.join(root, 'shallow');
    mkdirSync(path.join(dir, 'nested'), { recursive: true });
    const events: FilesystemEvent[] = [];
    const handle = await sandbox.files.watchDir(dir, (e) => void events.push(e));
    try {
      await sandbox.files.write(path.join(dir, 'nested/hidden.txt'), 'x');
      await sandbox.files.write(path.join(dir, 'marker.txt'), 'x');
      await waitFor(events, (e) => e.name === 'marker.txt' && e.type === FilesystemEventType.WRITE);
      expect(events.some((e) => e.name.includes('hidden'))).toBe(false);
    } finally {
      await handle.stop();
    }
  });

  it('includes entry info when asked', async () => {
    const dir = path.join(root, 'entries');
    mkdirSync(dir);
    const events: FilesystemEvent[] = [];
    const handle = await sandbox.files.watchDir(dir, (e) => void events.push(e), { includeEntry: true });
    try {
      await sandbox.files.write(path.join(dir, 'e.txt'), 'abc', { metadata: { k: 'v' } });
      const write = await waitFor(events, (e) => e.type === FilesystemEventType.WRITE);
      expect(write.entry).toMatchObject({ name: 'e.txt', type: 'file', size: 3, path: path.join(dir, 'e.txt'), metadata: { k: 'v' } });
    } finally {
      await handle.stop();
    }
  });

  it('refuses a missing directory (not found) and a file (invalid argument)', async () => {
    await expect(sandbox.files.watchDir(path.join(root, 'missing'), () => undefined)).rejects.toBeInstanceOf(NotFoundError);
    writeFileSync(path.join(root, 'a-file'), '');
    await expect(sandbox.files.watchDir(path.join(root, 'a-file'), () => undefined)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('releases the watch when the stream ends', async () => {
    const dir = path.join(root, 'released');
    mkdirSync(path.join(dir, 'a/b'), { recursive: true });
    const pid = daemon.child.pid!;
    const before = inotifyWatches(pid);
    const handle = await sandbox.files.watchDir(dir, () => undefined, { recursive: true });
    expect(inotifyWatches(pid)).toBe(before + 3);
    await handle.stop();
    expect(await eventually(() => inotifyWatches(pid) === before)).toBe(true);
  });

  it('sends keepalives paced by Keepalive-Ping-Interval when nothing happens', async () => {
    const dir = path.join(root, 'quiet');
    mkdirSync(dir);
    const controller = new AbortController();
    const stream = client().watchDir({ path: dir }, { headers: { 'Keepalive-Ping-Interval': '1' }, signal: controller.signal });
    const cases: string[] = [];
    try {
      for await (const res of stream) {
        cases.push(res.event.case ?? '');
        if (cases.length === 3) break;
      }
    } finally {
      controller.abort();
    }
    expect(cases).toEqual(['start', 'keepalive', 'keepalive']);
  });

  it("polls the sequence envd's poll watcher gives for a new file, an overwrite, a chmod, a rename and a remove", async () => {
    const dir = path.join(root, 'sequence');
    mkdirSync(dir);
    const fs = client();
    const { watcherId } = await fs.createWatcher({ path: dir });
    const poll = async (): Promise<string[]> => (await fs.getWatcherEvents({ watcherId })).events.map((e) => `${EventType[e.type]} ${e.name}`);
    /** Polls until `count` events came (the SDK's sync watch_dir polls like this), at most 10 s. */
    const collect = async (count: number): Promise<string[]> => {
      const got: string[] = [];
      for (let i = 0; i < 400 && got.length < count; i++) {
        got.push(...(await poll()));
        if (got.length < count) await new Promise((r) => setTimeout(r, 25));
      }
      return got.concat(await poll());
    };
    try {
      // An upload's events are there as soon as it is answered, as with envd (E2B's test_watch_iterated polls once).
      await sandbox.files.write(path.join(dir, 'f.txt'), 'one');
      expect(await poll()).toEqual(['CREATE f.txt', 'CHMOD f.txt', 'WRITE f.txt']);
      await sandbox.files.write(path.join(dir, 'f.txt'), 'two');
      expect(await poll()).toEqual(['CHMOD f.txt', 'WRITE f.txt']);
      chmodSync(path.join(dir, 'f.txt'), 0o600);
      expect(await collect(1)).toEqual(['CHMOD f.txt']);
      await sandbox.files.rename(path.join(dir, 'f.txt'), path.join(dir, 'g.txt'));
      expect(await collect(2)).toEqual(['RENAME f.txt', 'CREATE g.txt']);
      await sandbox.files.remove(path.join(dir, 'g.txt'));
      expect(await collect(1)).toEqual(['REMOVE g.txt']);
    } finally {
      await fs.removeWatcher({ watcherId });
    }
  });

  it('buffers events for a poll watcher until collected, then removes it', async () => {
    const dir = path.join(root, 'polled');
    mkdirSync(dir);
    const fs = client();
    const { watcherId } = await fs.createWatcher({ path: dir });
    expect(watcherId).toMatch(/^w/);
    await sandbox.files.write(path.join(dir, 'p.txt'), 'x');
    const collected: [string, EventType][] = [];
    for (let i = 0; i < 200 && !collected.some(([, t]) => t === EventType.WRITE); i++) {
      const { events } = await fs.getWatcherEvents({ watcherId });
      collected.push(...events.map((e): [string, EventType] => [e.name, e.type]));
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(collected).toEqual([
      ['p.txt', EventType.CREATE],
      ['p.txt', EventType.CHMOD],
      ['p.txt', EventType.WRITE],
    ]);
    expect((await fs.getWatcherEvents({ watcherId })).events).toEqual([]);
    await fs.removeWatcher({ watcherId });
    const gone = await fs.getWatcherEvents({ watcherId }).catch((e: unknown) => ConnectError.from(e));
    expect(gone).toBeInstanceOf(ConnectError);
    expect((gone as ConnectError).code).toBe(Code.NotFound);
    const again = await fs.removeWatcher({ watcherId }).catch((e: unknown) => ConnectError.from(e));
    expect((again as ConnectError).code).toBe(Code.NotFound);
    const missing = await fs.createWatcher({ path: path.join(dir, 'nope') }).catch((e: unknown) => ConnectError.from(e));
    expect((missing as ConnectError).code).toBe(Code.NotFound);
  });
});

/**
 * The stream's events go straight to the response for the Connect protocol (JSON or binary, no
 * response compression) and through Connect otherwise: each way must give the same stream.
 */
describe.each(READERS)('watch streams in every wire format (%s)', (_reader, env) => {
  let daemon: RunningDaemon;
  let root: string;

  beforeAll(async () => {
    root = scratchDir('watch-wire');
    ({ daemon } = await startSdkDaemon({ env }));
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const transports: [string, () => Transport][] = [
    ['Connect JSON over HTTP/1.1', () => createConnectTransport({ baseUrl: daemon.url, httpVersion: '1.1', acceptCompression: [] })],
    ['Connect binary over HTTP/1.1', () => createConnectTransport({ baseUrl: daemon.url, httpVersion: '1.1', useBinaryFormat: true, acceptCompression: [] })],
    ['Connect JSON over HTTP/2', () => createConnectTransport({ baseUrl: daemon.url, httpVersion: '2', acceptCompression: [] })],
    ['Connect binary with gzip responses', () => createConnectTransport({ baseUrl: daemon.url, httpVersion: '1.1', useBinaryFormat: true, acceptCompression: [compressionGzip] })],
    ['gRPC', () => createGrpcTransport({ baseUrl: daemon.url })],
    ['gRPC-web', () => createGrpcWebTransport({ baseUrl: daemon.url, httpVersion: '1.1' })],
  ];

  for (const [name, transport] of transports) {
    it(`gives the start event, each file's events in order, and a clean end of stream: ${name}`, async () => {
      const dir = path.join(root, name.replace(/\W+/g, '-'));
      mkdirSync(dir);
      const fs = createClient(Filesystem, transport());
      // The deadline ends the stream from the daemon's side, after the events: its end must arrive intact.
      const stream = fs.watchDir({ path: dir }, { headers: { 'Keepalive-Ping-Interval': '1' }, timeoutMs: 2500 });
      const seen: string[] = [];
      let ended: unknown;
      try {
        for await (const res of stream) {
          if (res.event.case === 'start') {
            seen.push('start');
            for (const f of ['a.txt', 'b.txt']) writeFileSync(path.join(dir, f), 'x');
          } else if (res.event.case === 'filesystem') {
            seen.push(`${EventType[res.event.value.type]} ${res.event.value.name}`);
          } else if (res.event.case === 'keepalive' && seen.at(-1) !== 'keepalive') {
            seen.push('keepalive');
          }
        }
      } catch (err) {
        ended = err;
      }
      expect(seen).toEqual(['start', 'CREATE a.txt', 'WRITE a.txt', 'CREATE b.txt', 'WRITE b.txt', 'keepalive']);
      expect(ConnectError.from(ended).code).toBe(Code.DeadlineExceeded);
    });
  }
});
