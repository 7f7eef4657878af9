import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPicodDaemon, type PicodDaemon } from './picod-support.js';

interface FileInfo {
  path: string;
  size: number;
  mode: string;
  modified: string;
}

describe('PicoD face: /api/files', () => {
  let p: PicodDaemon;
  beforeAll(async () => {
    p = await startPicodDaemon();
  });
  afterAll(async () => {
    await p?.daemon.stop();
  });

  const uploadJson = (body: unknown) =>
    fetch(`${p.url}/api/files`, { method: 'POST', headers: { 'content-type': 'application/json', ...p.auth() }, body: JSON.stringify(body) });
  const uploadForm = (form: FormData) => fetch(`${p.url}/api/files`, { method: 'POST', headers: p.auth(), body: form });
  const list = (dir: string) => fetch(`${p.url}/api/files?path=${encodeURIComponent(dir)}`, { headers: p.auth() });
  const download = (rel: string) => fetch(`${p.url}/api/files/${rel}`, { headers: p.auth() });
  const inWs = (rel: string) => path.join(p.workspace, rel);
  const modeOf = (rel: string) => statSync(inWs(rel)).mode & 0o777;

  it('writes a JSON upload (base64 content) and answers path, size, mode and modified', async () => {
    const res = await uploadJson({ path: 'notes/hello.txt', content: Buffer.from('hello file').toString('base64'), mode: '0644' });
    expect(res.status).toBe(200);
    const info = (await res.json()) as FileInfo;
    expect(info).toMatchObject({ path: 'notes/hello.txt', size: 10, mode: '-rw-r--r--' });
    expect(Math.abs(Date.parse(info.modified) - statSync(inWs('notes/hello.txt')).mtimeMs)).toBeLessThan(1000);
    expect(readFileSync(inWs('notes/hello.txt'), 'utf8')).toBe('hello file');
  });

  it('applies the mode to a new file, keeps an existing file mode, and falls back to 0644 for a bad mode', async () => {
    const content = Buffer.from('#!/bin/sh\necho ran\n').toString('base64');
    expect(((await (await uploadJson({ path: 'run.sh', content, mode: '0755' })).json()) as FileInfo).mode).toBe('-rwxr-xr-x');
    expect(modeOf('run.sh')).toBe(0o755);
    expect(((await (await uploadJson({ path: 'secret', content, mode: '0600' })).json()) as FileInfo).mode).toBe('-rw-------');
    await uploadJson({ path: 'run.sh', content, mode: '0644' });
    expect(modeOf('run.sh')).toBe(0o755);
    for (const [name, mode] of [['bad1', '0778'], ['bad2', 'abc'], ['bad3', '10000'], ['none', undefined]] as const) {
      await uploadJson({ path: name, content, mode });
      expect(modeOf(name)).toBe(0o644);
    }
  });

  it('takes multipart uploads whichever order the parts come in', async () => {
    const pathFirst = new FormData();
    pathFirst.append('path', 'multi/first.txt');
    pathFirst.append('mode', '0640');
    pathFirst.append('file', new Blob(['multipart content']), 'ignored-name.txt');
    const a = await uploadForm(pathFirst);
    expect(a.status).toBe(200);
    expect(await a.json()).toMatchObject({ path: 'multi/first.txt', size: 17, mode: '-rw-r-----' });

    const fileFirst = new FormData();
    fileFirst.append('file', new Blob(['file came first']), 'x');
    fileFirst.append('path', 'multi/second.txt');
    const b = await uploadForm(fileFirst);
    expect(b.status).toBe(200);
    expect(readFileSync(inWs('multi/second.txt'), 'utf8')).toBe('file came first');
    expect(modeOf('multi/second.txt')).toBe(0o644);
  });

  it('round-trips binary bytes through JSON and multipart uploads and downloads', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 7);
    expect((await uploadJson({ path: 'bin/json.bin', content: bytes.toString('base64') })).status).toBe(200);
    const form = new FormData();
    form.append('path', 'bin/form.bin');
    form.append('file', new Blob([bytes]), 'form.bin');
    expect((await uploadForm(form)).status).toBe(200);
    for (const name of ['bin/json.bin', 'bin/form.bin']) {
      expect(readFileSync(inWs(name)).equals(bytes)).toBe(true);
      const res = await download(name);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/octet-stream');
      expect(res.headers.get('content-disposition')).toBe(`attachment; filename="${path.basename(name)}"`);
      expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    }
  });

  it('serves a single byte range with 206 and Content-Range, and 416 for a range past the end', async () => {
    const bytes = randomBytes(2 * 1024 * 1024 + 11);
    writeFileSync(inWs('ranged.bin'), bytes);
    const ranged = (range: string) => fetch(`${p.url}/api/files/ranged.bin`, { headers: { ...p.auth(), range } });
    const mid = await ranged('bytes=1048570-1048600');
    expect(mid.status).toBe(206);
    expect(mid.headers.get('content-range')).toBe(`bytes 1048570-1048600/${bytes.length}`);
    expect(Buffer.from(await mid.arrayBuffer()).equals(bytes.subarray(1048570, 1048601))).toBe(true);
    const tail = await ranged('bytes=1000-');
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(1000))).toBe(true);
    const past = await ranged(`bytes=${bytes.length + 5}-`);
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${bytes.length}`);
  });

  it('takes absolute paths as relative to the workspace', async () => {
    const res = await uploadJson({ path: '/abs/inside.txt', content: Buffer.from('x').toString('base64') });
    expect(((await res.json()) as FileInfo).path).toBe('abs/inside.txt');
    expect(readFileSync(inWs('abs/inside.txt'), 'utf8')).toBe('x');
    expect(await (await download('abs/inside.txt')).text()).toBe('x');
  });

  it('lists a directory with name, size, modified, mode and is_dir, sorted by name', async () => {
    mkdirSync(inWs('listme/sub'), { recursive: true });
    writeFileSync(inWs('listme/b.txt'), 'bbb');
    writeFileSync(inWs('listme/a.txt'), 'a');
    symlinkSync('a.txt', inWs('listme/link'));
    const res = await list('listme');
    expect(res.status).toBe(200);
    const { files } = (await res.json()) as { files: { name: string; size: number; mode: string; is_dir: boolean; modified: string }[] };
    expect(files.map((f) => f.name)).toEqual(['a.txt', 'b.txt', 'link', 'sub']);
    expect(files[1]).toMatchObject({ name: 'b.txt', size: 3, mode: '-rw-r--r--', is_dir: false });
    expect(files[2]).toMatchObject({ name: 'link', mode: 'Lrwxrwxrwx', is_dir: false, size: lstatSync(inWs('listme/link')).size });
    expect(files[3]).toMatchObject({ name: 'sub', mode: 'drwxr-xr-x', is_dir: true });
    expect(Number.isNaN(Date.parse(files[0]!.modified))).toBe(false);
  });

  it('answers 404 for a missing file or directory and 400 for a directory download', async () => {
    const missingDir = await list('no/such/dir');
    expect(missingDir.status).toBe(404);
    expect(await missingDir.json()).toEqual({ error: 'Directory not found', code: 404 });
    const missingFile = await download('no-such-file.txt');
    expect(missingFile.status).toBe(404);
    expect(await missingFile.json()).toEqual({ error: 'File not found', code: 404 });
    mkdirSync(inWs('adir'), { recursive: true });
    const dir = await download('adir');
    expect(dir.status).toBe(400);
    expect(await dir.json()).toEqual({ error: 'Path is a directory, not a file', code: 400 });
  });

  it('refuses paths outside the workspace with 400', async () => {
    const up = await uploadJson({ path: '../outside.txt', content: Buffer.from('x').toString('base64') });
    expect(up.status).toBe(400);
    expect(((await up.json()) as { error: string }).error).toMatch(/escapes workspace jail/);
    expect((await list('../')).status).toBe(400);
    expect((await list('a/../../..')).status).toBe(400);
    // fetch folds dot segments, so send them with encoded slashes, as a raw client could.
    expect((await download('..%2F..%2Fetc%2Fpasswd')).status).toBe(400);
  });

  it('refuses symlinks that lead out of the workspace, for reads and writes', async () => {
    symlinkSync('/etc', inWs('etc-link'));
    expect((await download('etc-link/passwd')).status).toBe(400);
    expect((await list('etc-link')).status).toBe(400);
    const write = await uploadJson({ path: 'etc-link/sandboxd-picod-escape', content: Buffer.from('x').toString('base64') });
    expect(write.status).toBe(400);
    expect(() => statSync('/etc/sandboxd-picod-escape')).toThrow();
    symlinkSync('/nonexistent-target', inWs('dangling'));
    expect((await uploadJson({ path: 'dangling', content: Buffer.from('x').toString('base64') })).status).toBe(400);
  });

  it('follows symlinks that stay inside the workspace', async () => {
    writeFileSync(inWs('target.txt'), 'inside');
    symlinkSync('target.txt', inWs('inner-link'));
    expect(await (await download('inner-link')).text()).toBe('inside');
  });

  it('refuses bad upload bodies with 400', async () => {
    const bad = (body: unknown) => uploadJson(body).then((r) => r.status);
    expect(await bad({ path: 'x.txt', content: '***not base64***' })).toBe(400);
    expect(await bad({ content: 'eA==' })).toBe(400);
    expect(await bad({ path: 'x.txt' })).toBe(400);
    const raw = await fetch(`${p.url}/api/files`, { method: 'POST', headers: { 'content-type': 'application/json', ...p.auth() }, body: '{oops' });
    expect(raw.status).toBe(400);
    const noPath = new FormData();
    noPath.append('file', new Blob(['x']), 'x');
    const res = await uploadForm(noPath);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: "Missing 'path' field", code: 400 });
    const noFile = new FormData();
    noFile.append('path', 'x.txt');
    expect((await uploadForm(noFile)).status).toBe(400);
    expect((await list('')).status).toBe(400);
  });

  it('refuses an upload past 32 MiB with 413, also when the body is chunked', async () => {
    const big = Buffer.alloc(33 * 1024 * 1024, 0x41);
    const declared = await fetch(`${p.url}/api/files`, { method: 'POST', headers: { 'content-type': 'application/json', ...p.auth() }, body: big });
    expect(declared.status).toBe(413);
    const chunks = (function* () {
      for (let i = 0; i < 33; i++) yield new Uint8Array(1024 * 1024).fill(0x41);
    })();
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
    });
    const chunked = await fetch(`${p.url}/api/files`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...p.auth() },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    // The daemon serves on.
    expect((await fetch(`${p.url}/health`)).status).toBe(200);
  });
});
