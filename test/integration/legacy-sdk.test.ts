import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { EventType, FileType, Filesystem } from '../../src/gen/filesystem/filesystem_pb.js';
import { Process } from '../../src/gen/process/process_pb.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { scratchDir } from './files-support.js';

const LEGACY_ENTRY_FIELDS = ['name', 'path', 'type'];

describe('answers for the Python SDK up to 1.5 (User-Agent: connect-python)', () => {
  let daemon: RunningDaemon;
  let root: string;

  beforeAll(async () => {
    root = scratchDir('legacy');
    mkdirSync(path.join(root, 'dir'));
    writeFileSync(path.join(root, 'dir', 'file.txt'), 'hello');
    symlinkSync('file.txt', path.join(root, 'dir', 'link'));
    daemon = await startDaemon();
  });
  afterAll(async () => {
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const post = (rpc: string, body: unknown, userAgent: string): Promise<Response> =>
    fetch(`${daemon.url}/filesystem.Filesystem/${rpc}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': userAgent, authorization: 'Basic cm9vdDo=' },
      body: JSON.stringify(body),
    });

  const client = (userAgent: string, useBinaryFormat: boolean) => {
    const agent: Interceptor = (next) => (req) => {
      req.header.set('user-agent', userAgent);
      return next(req);
    };
    const transport = createConnectTransport({ baseUrl: daemon.url, httpVersion: '1.1', useBinaryFormat, interceptors: [agent] });
    return { fs: createClient(Filesystem, transport), process: createClient(Process, transport) };
  };

  it('cuts a Stat entry to name, type and path and says so in X-E2B-Legacy-SDK', async () => {
    const res = await post('Stat', { path: path.join(root, 'dir', 'file.txt') }, 'connect-python');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-e2b-legacy-sdk')).toBe('true');
    expect(await res.json()).toEqual({ entry: { name: 'file.txt', type: 'FILE_TYPE_FILE', path: path.join(root, 'dir', 'file.txt') } });
  });

  it('gives every other agent the full entry and no legacy header', async () => {
    for (const agent of ['e2b-python-sdk/1.11.1', 'connect-python/2', 'Connect-Python ']) {
      const res = await post('Stat', { path: path.join(root, 'dir', 'file.txt') }, agent);
      expect(res.headers.get('x-e2b-legacy-sdk')).toBeNull();
      const { entry } = (await res.json()) as { entry: Record<string, unknown> };
      expect(entry).toMatchObject({ size: '5', owner: 'root' });
    }
  });

  it('lists entries with nothing but name, type and path', async () => {
    const res = await post('ListDir', { path: path.join(root, 'dir') }, 'connect-python');
    const { entries } = (await res.json()) as { entries: Record<string, unknown>[] };
    expect(entries).toHaveLength(2);
    for (const e of entries) expect(Object.keys(e).sort()).toEqual(LEGACY_ENTRY_FIELDS);
  });

  it('leaves errors as they are, without the legacy header', async () => {
    const res = await post('Stat', { path: path.join(root, 'missing') }, 'connect-python');
    expect(res.status).toBe(404);
    expect(res.headers.get('x-e2b-legacy-sdk')).toBeNull();
    expect(((await res.json()) as { code: string }).code).toBe('not_found');
  });

  for (const binary of [false, true]) {
    describe(binary ? 'in binary protobuf' : 'in JSON', () => {
      it('cuts the entries of ListDir, MakeDir and Move', async () => {
        const { fs } = client('connect-python', binary);
        const dir = path.join(root, binary ? 'bin' : 'json');
        const made = await fs.makeDir({ path: dir });
        expect(made.entry).toMatchObject({ name: path.basename(dir), type: FileType.DIRECTORY, path: dir, size: 0n, owner: '' });
        const moved = await fs.move({ source: dir, destination: dir + '-moved' });
        expect(moved.entry).toMatchObject({ path: dir + '-moved', mode: 0, permissions: '' });
        const listed = await fs.listDir({ path: path.join(root, 'dir'), depth: 1 });
        expect(listed.entries.map((e) => [e.name, e.size, e.modifiedTime])).toEqual([
          ['file.txt', 0n, undefined],
          ['link', 0n, undefined],
        ]);
      });

      it('streams WatchDir events without their entries', async () => {
        const { fs } = client('connect-python', binary);
        const dir = path.join(root, binary ? 'watch-bin' : 'watch-json');
        mkdirSync(dir);
        const abort = new AbortController();
        let legacyHeader: string | null = null;
        const onHeader = (h: Headers): void => void (legacyHeader = h.get('x-e2b-legacy-sdk'));
        const stream = fs.watchDir({ path: dir, includeEntry: true }, { signal: abort.signal, onHeader })[Symbol.asyncIterator]();
        expect((await stream.next()).value?.event.case).toBe('start');
        expect(legacyHeader).toBe('true');
        writeFileSync(path.join(dir, 'a.txt'), 'x');
        const first = (await stream.next()).value;
        expect(first?.event.case).toBe('filesystem');
        if (first?.event.case !== 'filesystem') return;
        expect(first.event.value).toMatchObject({ name: 'a.txt', type: EventType.CREATE });
        expect(first.event.value.entry).toBeUndefined();
        abort.abort();
      });

      it('cuts the events of a poll watcher', async () => {
        const { fs } = client('connect-python', binary);
        const dir = path.join(root, binary ? 'poll-bin' : 'poll-json');
        mkdirSync(dir);
        const { watcherId } = await fs.createWatcher({ path: dir, includeEntry: true });
        writeFileSync(path.join(dir, 'b.txt'), 'x');
        let events = (await fs.getWatcherEvents({ watcherId })).events;
        while (!events.some((e) => e.type === EventType.CREATE)) events = events.concat((await fs.getWatcherEvents({ watcherId })).events);
        const created = events.find((e) => e.type === EventType.CREATE);
        expect(created?.name).toBe('b.txt');
        expect(created?.entry).toBeUndefined();
        await fs.removeWatcher({ watcherId });
      });
    });
  }

  it('answers the Process service unchanged, as envd does', async () => {
    const res = await fetch(`${daemon.url}/process.Process/List`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'connect-python', authorization: 'Basic cm9vdDo=' },
      body: '{}',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-e2b-legacy-sdk')).toBeNull();
  });
});
