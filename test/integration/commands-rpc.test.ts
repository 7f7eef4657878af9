import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { Process, Signal, type ProcessEvent, type StartRequest } from '../../src/gen/process/process_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { StartRequestSchema, StreamInputRequestSchema } from '../../src/gen/process/process_pb.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';

type ProcessClient = Client<typeof Process>;
type Event = ProcessEvent['event'];

async function codeOf(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

async function drain(stream: AsyncIterable<{ event?: ProcessEvent }>): Promise<Event[]> {
  const events: Event[] = [];
  for await (const r of stream) events.push(r.event!.event);
  return events;
}

function stdoutOf(events: Event[]): string {
  return events
    .filter((e) => e.case === 'data' && e.value.output.case === 'stdout')
    .map((e) => Buffer.from((e.value as { output: { value: Uint8Array } }).output.value).toString())
    .join('');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A Connect-protocol server stream opened by hand, so the test decides when (and whether) to read it. */
function rawServerStream(url: string, method: string, body: object, headers: Record<string, string> = {}): Promise<http.IncomingMessage> {
  const json = Buffer.from(JSON.stringify(body));
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(json.length, 1);
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/process.Process/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/connect+json', 'connect-protocol-version': '1', ...headers },
    });
    req.on('response', resolve);
    req.on('error', reject);
    req.end(Buffer.concat([prefix, json]));
  });
}

/**
 * Splits a Connect stream body into its messages; the end-of-stream message has flag 2, a
 * compressed one flag 1 (its bytes go through `decompress`).
 */
function envelopes(body: Buffer, decompress: (b: Buffer) => Buffer = (b) => b): { flags: number; json: Record<string, unknown> }[] {
  const out: { flags: number; json: Record<string, unknown> }[] = [];
  for (let off = 0; off + 5 <= body.length; ) {
    const len = body.readUInt32BE(off + 1);
    const flags = body[off]!;
    const data = body.subarray(off + 5, off + 5 + len);
    out.push({ flags, json: JSON.parse((flags & 1 ? decompress(data) : data).toString()) as Record<string, unknown> });
    off += 5 + len;
  }
  return out;
}

type StartInit = MessageInitShape<typeof StartRequestSchema>;
type InputInit = MessageInitShape<typeof StreamInputRequestSchema>;

const sh = (script: string): StartInit => ({ process: { cmd: '/bin/sh', args: ['-c', script] }, stdin: false });

describe('process RPCs with a Connect client', () => {
  let d: RunningDaemon;
  let client: ProcessClient;
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'sbx-rpc-'));

  beforeAll(async () => {
    d = await startDaemon();
    client = createClient(Process, createConnectTransport({ baseUrl: d.url, httpVersion: '1.1' }));
  });
  afterAll(async () => {
    await d?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('streams start, data and end with envd status strings', async () => {
    const events = await drain(client.start(sh('echo out; echo err >&2; exit 3')));
    expect(events[0]?.case).toBe('start');
    expect(stdoutOf(events)).toBe('out\n');
    const end = events.at(-1);
    expect(end?.case).toBe('end');
    expect(end?.value).toMatchObject({ exitCode: 3, exited: true, status: 'exit status 3', error: 'exit status 3' });
  });

  it('reports SIGTERM as signal: terminated', async () => {
    const stream = client.start({ process: { cmd: '/bin/sleep', args: ['30'] }, stdin: false })[Symbol.asyncIterator]();
    const first = (await stream.next()).value!.event!.event;
    expect(first.case).toBe('start');
    const pid = (first.value as { pid: number }).pid;
    await client.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: Signal.SIGTERM });
    let last: Event | undefined;
    for (let r = await stream.next(); !r.done; r = await stream.next()) last = r.value.event!.event;
    expect(last?.value).toMatchObject({ exitCode: -1, exited: false, status: 'signal: terminated' });
  });

  it.each([
    ['gzip', gunzipSync],
    ['br', brotliDecompressSync],
  ] as const)('compresses each message for a client that accepts %s, and the output arrives byte for byte', async (encoding, decompress) => {
    const script = 'seq 1 300000; head -c 200000 /dev/urandom | od -An -tx1 | head -c 100000';
    const expected = Array.from({ length: 300000 }, (_, i) => `${i + 1}\n`).join('');
    const res = await rawServerStream(d.url, 'Start', sh(script), { 'connect-accept-encoding': encoding });
    expect(res.headers['connect-content-encoding']).toBe(encoding);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const messages = envelopes(Buffer.concat(chunks), (b) => decompress(b));
    const data = messages.filter((m) => m.flags === 1 && (m.json.event as { data?: unknown }).data);
    expect(data.length).toBeGreaterThan(1);
    const out = data.map((m) => Buffer.from(((m.json.event as { data: { stdout?: string } }).data.stdout ?? ''), 'base64')).reduce((a, b) => Buffer.concat([a, b]));
    expect(out.subarray(0, expected.length).toString()).toBe(expected);
    expect(out.length).toBe(expected.length + 100000);
    expect(messages.at(-1)?.flags).toBe(2);
  });

  it('works over gRPC as well', async () => {
    const grpc = createClient(Process, createGrpcTransport({ baseUrl: d.url }));
    const events = await drain(grpc.start(sh('echo via-grpc')));
    expect(stdoutOf(events)).toBe('via-grpc\n');
  });

  it('finds processes by tag, lists the tag and config, and keeps an ended one connectable', async () => {
    const gate = path.join(scratch, 'gate-tag');
    const script = `while [ ! -e ${gate} ]; do sleep 0.02; done; echo tagged; exit 7`;
    const req: StartInit = { process: { cmd: '/bin/sh', args: ['-c', script], envs: { K: 'v' }, cwd: '/tmp' }, tag: 'job-1', stdin: false };
    const starting = client.start(req)[Symbol.asyncIterator]();
    const pid = ((await starting.next()).value!.event!.event.value as { pid: number }).pid;

    const { processes } = await client.list({});
    const info = processes.find((p) => p.pid === pid);
    expect(info?.tag).toBe('job-1');
    expect(info?.config).toMatchObject({ cmd: '/bin/sh', envs: { K: 'v' }, cwd: '/tmp' });

    const follower = client.connect({ process: { selector: { case: 'tag', value: 'job-1' } } })[Symbol.asyncIterator]();
    expect((await follower.next()).value!.event!.event).toMatchObject({ case: 'start', value: { pid } });
    writeFileSync(gate, '');
    const followed: Event[] = [];
    for (let r = await follower.next(); !r.done; r = await follower.next()) followed.push(r.value.event!.event);
    expect(stdoutOf(followed)).toBe('tagged\n');
    expect(followed.at(-1)?.value).toMatchObject({ exitCode: 7 });
    for (let r = await starting.next(); !r.done; r = await starting.next());

    expect((await client.list({})).processes.some((p) => p.pid === pid)).toBe(false);
    for (const selector of [{ case: 'pid' as const, value: pid }, { case: 'tag' as const, value: 'job-1' }]) {
      const late = await drain(client.connect({ process: { selector } }));
      expect(late.map((e) => e.case)).toEqual(['start', 'end']);
      expect(late[1]?.value).toMatchObject({ exitCode: 7, exited: true, status: 'exit status 7' });
    }
    expect(await codeOf(client.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: Signal.SIGKILL }))).toBe(Code.NotFound);
  });

  it('writes streamed input in order', async () => {
    const starting = client.start({ process: { cmd: '/bin/cat' }, stdin: true })[Symbol.asyncIterator]();
    const pid = ((await starting.next()).value!.event!.event.value as { pid: number }).pid;
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i}\n`);
    async function* input(): AsyncGenerator<InputInit> {
      yield { event: { case: 'start' as const, value: { process: { selector: { case: 'pid' as const, value: pid } } } } };
      for (const l of lines) {
        yield { event: { case: 'data' as const, value: { input: { input: { case: 'stdin' as const, value: Buffer.from(l) } } } } };
      }
      yield { event: { case: 'keepalive' as const, value: {} } };
    }
    await client.streamInput(input());
    await client.closeStdin({ process: { selector: { case: 'pid', value: pid } } });
    const rest: Event[] = [];
    for (let r = await starting.next(); !r.done; r = await starting.next()) rest.push(r.value.event!.event);
    expect(stdoutOf(rest)).toBe(lines.join(''));
  });

  it('sends keepalive events at the Keepalive-Ping-Interval while a process is quiet', async () => {
    const gate = path.join(scratch, 'gate-keepalive');
    const stream = client.start(sh(`while [ ! -e ${gate} ]; do sleep 0.05; done`), { headers: { 'Keepalive-Ping-Interval': '1' } });
    const cases: string[] = [];
    for await (const r of stream) {
      const c = r.event!.event.case!;
      cases.push(c);
      if (c === 'keepalive') writeFileSync(gate, '');
    }
    expect(cases[0]).toBe('start');
    expect(cases).toContain('keepalive');
    expect(cases.at(-1)).toBe('end');
  });

  it('kills the process at the Connect-Timeout-Ms deadline', async () => {
    const stream = client.start({ process: { cmd: '/bin/sleep', args: ['30'] }, stdin: false }, { timeoutMs: 500 })[Symbol.asyncIterator]();
    const pid = ((await stream.next()).value!.event!.event.value as { pid: number }).pid;
    const err = await (async () => {
      for (let r = await stream.next(); !r.done; r = await stream.next());
    })().catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.DeadlineExceeded);
    await until(() => !alive(pid), 'the process to be killed');
  });

  it('keeps a slow follower from stalling the process or the starting stream: the follower is cut off', async () => {
    const gate = path.join(scratch, 'gate-fanout');
    const size = 64 * 1024 * 1024;
    const starting = client.start(sh(`while [ ! -e ${gate} ]; do sleep 0.02; done; head -c ${size} /dev/zero`))[Symbol.asyncIterator]();
    const pid = ((await starting.next()).value!.event!.event.value as { pid: number }).pid;

    const stalled = await rawServerStream(d.url, 'Connect', { process: { pid } });
    stalled.pause();
    writeFileSync(gate, '');

    let bytes = 0;
    let end: Event | undefined;
    for (let r = await starting.next(); !r.done; r = await starting.next()) {
      const e = r.value.event!.event;
      if (e.case === 'data') bytes += (e.value.output.value as Uint8Array).length;
      if (e.case === 'end') end = e;
    }
    expect(bytes).toBe(size);
    expect(end?.value).toMatchObject({ exitCode: 0 });

    const chunks: Buffer[] = [];
    stalled.on('data', (c: Buffer) => chunks.push(c));
    stalled.resume();
    await new Promise((r) => stalled.on('end', r));
    const messages = envelopes(Buffer.concat(chunks));
    const last = messages.at(-1)!;
    expect(last.flags & 2).toBe(2);
    expect((last.json.error as { code: string }).code).toBe('aborted');
    const followerBytes = messages
      .map((m) => (m.json.event as { data?: { stdout?: string } } | undefined)?.data?.stdout)
      .filter((s): s is string => s !== undefined)
      .reduce((n, s) => n + Buffer.from(s, 'base64').length, 0);
    expect(followerBytes).toBeLessThan(size);
  });

  describe('bad input', () => {
    it('rejects an empty command, a missing binary and a missing cwd as invalid_argument', async () => {
      expect(await codeOf(drain(client.start({ process: { cmd: '' } })))).toBe(Code.InvalidArgument);
      expect(await codeOf(drain(client.start({ process: { cmd: '/no/such/binary' } })))).toBe(Code.InvalidArgument);
      expect(await codeOf(drain(client.start({ process: { cmd: 'no-such-binary-sbx' } })))).toBe(Code.InvalidArgument);
      expect(await codeOf(drain(client.start({ process: { cmd: '/bin/true', cwd: '/no/such/dir' } })))).toBe(Code.InvalidArgument);
      expect(await codeOf(drain(client.start({} as StartRequest)))).toBe(Code.InvalidArgument);
    });

    it('answers unknown pids and tags with not_found', async () => {
      const byTag = { process: { selector: { case: 'tag' as const, value: 'no-such-tag' } } };
      const byPid = { process: { selector: { case: 'pid' as const, value: 999_999 } } };
      expect(await codeOf(drain(client.connect(byTag)))).toBe(Code.NotFound);
      expect(await codeOf(drain(client.connect(byPid)))).toBe(Code.NotFound);
      expect(await codeOf(client.sendSignal({ ...byTag, signal: Signal.SIGKILL }))).toBe(Code.NotFound);
      expect(await codeOf(client.update({ ...byPid, pty: { size: { cols: 10, rows: 10 } } }))).toBe(Code.NotFound);
      expect(await codeOf(client.sendInput({ ...byPid, input: { input: { case: 'stdin', value: new Uint8Array([1]) } } }))).toBe(Code.NotFound);
    });

    it('rejects Update (resize) and pty input on a process without a pty, and input before a stream start', async () => {
      const starting = client.start({ process: { cmd: '/bin/cat' }, stdin: true })[Symbol.asyncIterator]();
      const pid = ((await starting.next()).value!.event!.event.value as { pid: number }).pid;
      const sel = { process: { selector: { case: 'pid' as const, value: pid } } };
      expect(await codeOf(client.update({ ...sel, pty: { size: { cols: 100, rows: 30 } } }))).toBe(Code.FailedPrecondition);
      expect(await codeOf(client.sendInput({ ...sel, input: { input: { case: 'pty', value: new Uint8Array([1]) } } }))).toBe(Code.FailedPrecondition);
      expect(await codeOf(client.sendSignal({ ...sel, signal: Signal.UNSPECIFIED }))).toBe(Code.Unimplemented);
      async function* dataFirst(): AsyncGenerator<InputInit> {
        yield { event: { case: 'data' as const, value: { input: { input: { case: 'stdin' as const, value: new Uint8Array([1]) } } } } };
      }
      expect(await codeOf(client.streamInput(dataFirst()))).toBe(Code.InvalidArgument);
      await client.sendSignal({ ...sel, signal: Signal.SIGKILL });
      for (let r = await starting.next(); !r.done; r = await starting.next());
    });
  });
});

describe('daemon shutdown', () => {
  it('ends child processes on SIGTERM, killing those that ignore it', async () => {
    const d = await startDaemon();
    const client = createClient(Process, createConnectTransport({ baseUrl: d.url, httpVersion: '1.1' }));
    const pids: number[] = [];
    for (const script of ['exec sleep 300', 'trap "" TERM; exec sleep 300']) {
      const it = client.start(sh(script), { timeoutMs: 0 })[Symbol.asyncIterator]();
      pids.push(((await it.next()).value!.event!.event.value as { pid: number }).pid);
      void it.return?.();
    }
    expect(pids.every(alive)).toBe(true);
    expect(await d.stop('SIGTERM')).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
  });
});
