/**
 * Benchmarks against the real peers: E2B's envd (Go, built from e2b-dev/infra; `ENVD_BIN=<path>`) and
 * AgentScope's in-sandbox MCP gateway (Python, FastAPI; from the bench venv `bench/tmp/venv`, or
 * `AGENTSCOPE_PYTHON=<python>`). Every figure is measured on both with the same client code, interleaved
 * (envd, sandboxd, envd, …), and the median of each side is compared. Ratio = sandboxd's speed ÷ the
 * peer's, so > 1 means sandboxd is faster (or, for memory, smaller).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, existsSync, mkdirSync, openAsBlob, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { create } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Sandbox } from 'e2b';
import { Process, ProcessConfigSchema } from '../src/gen/process/process_pb.js';
import { freePort, ROOT, startDaemon, type RunningDaemon } from '../test/helpers/daemon.js';
import { ensureUser } from '../test/integration/files-support.js';
import { runtimeOf } from './executable.js';
import { download, fmtBytes, fmtMs, median, MiB, now, postJson } from './lib.js';

const SMOKE = process.env.BENCH_SMOKE === '1';
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY, 'i') : undefined;
const TRANSFER = SMOKE ? 2 * MiB : 256 * MiB;
const SDK_READ = SMOKE ? 256 * 1024 : 32 * MiB;
const LIST_ENTRIES = SMOKE ? 100 : 10_000;
const SMALL_FILES = SMOKE ? 100 : 10_000;
const ROUNDS = SMOKE ? 1 : 3;
const LATENCY_SAMPLES = SMOKE ? 3 : 30;
/** Untimed runs per side before a figure's samples (none at smoke sizes: only that it runs counts). */
const WARMUP = SMOKE ? 0 : 1;
/**
 * Commands run as a user made as the image makes `user` (`useradd -m -s /bin/bash`, no group besides
 * its own); this machine's `user` carries a test group, which costs each command a setpriv exec.
 */
const BENCH_USER = process.env.BENCH_USER ?? 'sbxbench';
const EVERYTHING = path.join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

/** One side of the comparison: a running daemon and the clients pointed at it. */
interface Side {
  name: string;
  url: string;
  pid: number;
  sandbox: Sandbox;
}

type Kind = 'time' | 'rate' | 'bytes';

export interface PeerFigure {
  figure: string;
  peer: string;
  /** The peer's median: ms for time, bytes/s for rate, bytes for memory; undefined when not run. */
  theirs: number | undefined;
  ours: number | undefined;
  kind: Kind;
  /** sandboxd's speed ÷ the peer's (or the peer's memory ÷ sandboxd's): > 1 means sandboxd is better. */
  ratio: number | undefined;
  note?: string;
  error?: string;
}

function fmt(kind: Kind, v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return '—';
  if (kind === 'time') return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : fmtMs(v);
  if (kind === 'rate') return `${(v / MiB).toFixed(v >= 10 * MiB ? 0 : 1)} MiB/s`;
  return fmtBytes(v);
}

/**
 * Runs `sample` for each side in turn, `rounds` times (peer first, then sandboxd), after one untimed
 * warm-up each, and returns the medians per side.
 */
async function interleave<S>(sides: S[], rounds: number, sample: (s: S) => Promise<number>, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) for (const s of sides) await sample(s);
  const got = sides.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) for (const [i, s] of sides.entries()) got[i]!.push(await sample(s));
  if (rounds > 1) process.stderr.write(`bench:   samples ${got.map((g) => g.map((v) => v.toPrecision(4)).join(' ')).join(' | ')}\n`);
  return got.map(median);
}

/** Milliseconds `fn` takes. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = now();
  await fn();
  return now() - t;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** A process and all its descendants: pid, command line and resident set size in bytes. */
export function processTree(pid: number): { pid: number; cmd: string; rss: number }[] {
  const found: { pid: number; cmd: string; rss: number }[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean).map((a) => path.basename(a)).join(' ');
      found.push({ pid: p, cmd, rss: m ? Number(m[1]) * 1024 : 0 });
      for (const task of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim();
        if (kids) stack.push(...kids.split(/\s+/).map(Number));
      }
    } catch {
      // the process is gone
    }
  }
  return found;
}

/** Resident set size of a process and all its descendants, in bytes. */
export function treeRss(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + p.rss, 0);
}

/** VmRSS, VmHWM (peak since the last reset) and RssAnon (not mapped from a file) of one process, in bytes. */
export function ownRss(pid: number): { rss: number; peak: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM'), anon: kb('RssAnon') };
}

/** Resets a process's VmHWM to its current RSS (clear_refs 5; root, or the same user). */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** How long a workload's "RSS after" waits for the runtime to settle (GC, freed buffers). */
const SETTLE_MS = 2000;

/**
 * Two memory figures from one workload run per round: the daemon's peak RSS during it (VmHWM, reset
 * first) and its RSS SETTLE_MS after it. The second figure reads what the first recorded.
 */
function memoryPair(what: string, workload: (s: Side) => Promise<unknown>): Task[] {
  const after = new Map<string, number[]>();
  const before = new Map<string, number>();
  return [
    {
      figure: `${what}: peak RSS of the daemon`,
      kind: 'bytes',
      warmup: 0,
      fresh: true,
      sample: async (s) => {
        const start = ownRss(s.pid).rss;
        if (!before.has(s.name)) before.set(s.name, start);
        resetPeak(s.pid);
        await workload(s);
        const { peak } = ownRss(s.pid);
        await new Promise((r) => setTimeout(r, SETTLE_MS));
        const settled = ownRss(s.pid).rss;
        after.set(s.name, [...(after.get(s.name) ?? []), settled]);
        process.stderr.write(`bench:     ${s.name}: RSS ${fmtBytes(start)} before, ${fmtBytes(peak)} peak, ${fmtBytes(settled)} ${SETTLE_MS / 1000} s after\n`);
        return peak;
      },
      note: () => `RSS before the first round: ${[...before].map(([n, b]) => `${n} ${fmtBytes(b)}`).join(', ')} (freshly started daemons, one health check and one SDK connection each)`,
    },
    {
      figure: `${what}: RSS of the daemon ${SETTLE_MS / 1000} s after`,
      kind: 'bytes',
      rounds: 1,
      warmup: 0,
      sample: async (s) => {
        const got = after.get(s.name);
        if (!got?.length) throw new Error('measured with the peak figure before it: select both (BENCH_ONLY=RSS)');
        return median(got);
      },
    },
  ];
}

async function waitHealthy(url: string, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not answer ${url}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
  await once(child, 'exit');
  clearTimeout(kill);
}

/**
 * Starts envd as E2B runs it outside Firecracker, without cgroups, at the priority its unit gives it
 * (`Nice=-20`, what sandboxd gives itself as root; `nice` execs envd, so the pid is envd's).
 */
async function startEnvd(bin: string): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const args = ['-isnotfc', '-no-cgroups', '-port', String(port)];
  const [file, argv] = process.getuid?.() === 0 ? ['nice', ['-n', '-20', bin, ...args]] : [bin, args];
  const child = spawn(file, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.resume();
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(`${url}/health`, child, 'envd');
  return { child, url };
}

/** Streams `cmd`'s stdout through a raw Connect client in binary format and counts the bytes. */
async function connectStdout(url: string, cmd: string, user: string): Promise<number> {
  const transport = createConnectTransport({ baseUrl: url, httpVersion: '1.1', useBinaryFormat: true });
  const client = createClient(Process, transport);
  let n = 0;
  const headers = { authorization: `Basic ${Buffer.from(`${user}:`).toString('base64')}` };
  const stream = client.start({ process: create(ProcessConfigSchema, { cmd: '/bin/bash', args: ['-l', '-c', cmd], envs: {} }) }, { headers });
  for await (const res of stream) {
    const ev = res.event?.event;
    if (ev?.case === 'data' && ev.value.output.case === 'stdout') n += ev.value.output.value.length;
  }
  return n;
}

/** A PTY round trip: one keystroke sent, its echo seen. Returns the median over `samples`. */
async function ptyEcho(sandbox: Sandbox, samples: number): Promise<number> {
  let seen = '';
  let waiter: (() => void) | undefined;
  let want = '';
  const handle = await sandbox.pty.create({
    cols: 80,
    rows: 24,
    user: BENCH_USER,
    timeoutMs: 0,
    onData: (d) => {
      seen += Buffer.from(d).toString('latin1');
      if (want && seen.includes(want)) waiter?.();
    },
  });
  // Under `cat` the tty line discipline echoes each keystroke; the shell's startup is waited for first
  // (the typed line shows RE''ADY, its output READY).
  want = 'READY';
  const ready = new Promise<void>((resolve) => (waiter = resolve));
  await sandbox.pty.sendInput(handle.pid, new TextEncoder().encode("stty -icanon; echo RE''ADY; exec cat\n"));
  await ready;
  const lat: number[] = [];
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < samples + 2; i++) {
    want = `${letters[i % 26]}${letters[Math.floor(i / 26) % 26]}#`;
    seen = '';
    const got = new Promise<void>((resolve) => (waiter = resolve));
    const t = now();
    await sandbox.pty.sendInput(handle.pid, new TextEncoder().encode(want));
    await got;
    if (i >= 2) lat.push(now() - t);
  }
  await sandbox.pty.kill(handle.pid);
  return median(lat);
}

/**
 * CPU time a process's threads have used so far, in ms: the scheduler's nanosecond run time of each
 * (/proc/<pid>/task/<tid>/schedstat), else utime+stime from /proc/<pid>/stat (10 ms ticks, too coarse
 * for a hundred events).
 */
function cpuMs(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    if (ns > 0) return ns / 1e6;
  } catch {
    // no schedstat (or a thread went meanwhile): the ticks below
  }
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/**
 * The floor of the `watchDir` row: a bare `node:http` server in its own process (at the daemons'
 * nice) that answers `WatchDir` in the Connect protocol as the SDK speaks it (JSON envelopes), with
 * one `fs.watch` on the directory and, per inotify event, one envelope written straight to the
 * response: no lstat, no event kinds judged, no Connect library. What Node's own path costs per event.
 */
async function startWatchFloor(): Promise<Side & { close(): Promise<void> }> {
  const port = await freePort();
  const server = `
const http = require('node:http'), fs = require('node:fs');
const envelope = (o) => { const b = Buffer.from(JSON.stringify(o)); const h = Buffer.alloc(5); h.writeUInt32BE(b.length, 1); return Buffer.concat([h, b]); };
http.createServer((q, s) => {
  if (q.method !== 'POST') return s.end('ok');
  const chunks = [];
  q.on('data', (c) => chunks.push(c));
  q.on('end', () => {
    const req = JSON.parse(Buffer.concat(chunks).subarray(5).toString());
    s.writeHead(200, { 'content-type': 'application/connect+json' });
    s.write(envelope({ start: {} }));
    const w = fs.watch(req.path, (kind, name) => s.write(envelope({ filesystem: { name, type: kind === 'rename' ? 'EVENT_TYPE_CREATE' : 'EVENT_TYPE_WRITE' } })));
    s.on('close', () => w.close());
  });
}).listen(${port}, '127.0.0.1');`;
  // On the Node the daemon runs on: the single executable's own runtime when the bench runs that.
  const node = process.env.SANDBOXD_EXECUTABLE ? runtimeOf(path.resolve(ROOT, process.env.SANDBOXD_EXECUTABLE)).node : process.env.SANDBOXD_NODE || process.execPath;
  const [file, argv] = process.getuid?.() === 0 ? ['nice', ['-n', '-20', node, '-e', server]] : [node, ['-e', server]];
  const child = spawn(file, argv, { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, child, 'bare node:http watch server');
  return { name: 'floor', url, pid: child.pid!, sandbox: await Sandbox.create({ debug: true, sandboxUrl: url }), close: () => stopChild(child) };
}

/**
 * Milliseconds from writing a file (directly, not through a daemon) to its watchDir event (the median
 * over `samples`), and the CPU time process `pid` spent over those samples.
 */
async function watchLatency(sandbox: Sandbox, dir: string, samples: number, pid: number): Promise<{ ms: number; cpu: number }> {
  mkdirSync(dir, { recursive: true });
  let waiter: ((name: string) => void) | undefined;
  const w = await sandbox.files.watchDir(dir, (e) => waiter?.(e.name), { user: 'root', timeoutMs: 0 });
  const lat: number[] = [];
  let cpu = 0;
  for (let i = 0; i < samples + 2; i++) {
    const name = `w${i}.txt`;
    const got = new Promise<void>((resolve) => (waiter = (n) => n === name && resolve()));
    if (i === 2) cpu = cpuMs(pid);
    const t = now();
    await writeFile(path.join(dir, name), 'x');
    await got;
    if (i >= 2) lat.push(now() - t);
  }
  cpu = cpuMs(pid) - cpu;
  await w.stop();
  return { ms: median(lat), cpu };
}

/** Writes SMALL_FILES small files into `dir` through the SDK, as one multipart request; ms. */
function writeSmallFiles(s: Side, dir: string): Promise<number> {
  const files = Array.from({ length: SMALL_FILES }, (_, i) => ({ path: path.join(dir, `f${i}.txt`), data: `file ${i}\n` }));
  return timed(async () => {
    const res = await s.sandbox.files.write(files, { user: 'root', requestTimeoutMs: 0 });
    if (res.length !== SMALL_FILES) throw new Error(`wrote ${res.length} of ${SMALL_FILES} files`);
  });
}

interface Task {
  figure: string;
  kind: Kind;
  rounds?: number;
  /** Untimed runs per side first (1 unless said). */
  warmup?: number;
  /** One sample on one side: ms for time, bytes/s for rate. */
  sample(s: Side): Promise<number>;
  /** Said beside the figure, once it is measured. */
  note?(): string | undefined;
  /** Run on freshly started daemons, so what the figures before it left in memory does not count. */
  fresh?: boolean;
  /** A same-work floor, measured in the same rounds between the peer and sandboxd, printed as its own row. */
  floor?: { figure: string; start(): Promise<Side & { close(): Promise<void> }> };
}

/** The envd-face figures, each measured on every side with the same client code. */
function envdTasks(work: string): Task[] {
  const big = path.join(work, 'big.bin');
  const sdkRead = path.join(work, 'sdk-read.bin');
  const many = path.join(work, 'many');
  const small = path.join(work, 'small.txt');
  const tree = path.join(work, 'tree');
  /** Directories the new-files figure has used, per side. */
  const fresh: Record<string, number> = {};
  const rate = (bytes: number, ms: number): number => bytes / (ms / 1000);
  const stdoutCmd = `head -c ${TRANSFER} /dev/zero`;
  const concurrent = (n: number): Task => ({
    figure: `${n.toLocaleString('en')} concurrent \`commands.run\`, wall`,
    kind: 'time',
    rounds: SMOKE ? 1 : 3,
    warmup: n > 200 ? 0 : 1,
    sample: (s) =>
      timed(() =>
        Promise.all(
          Array.from({ length: n }, async (_, i) => {
            const r = await s.sandbox.commands.run(`echo ${i}`, { user: BENCH_USER, timeoutMs: 0, requestTimeoutMs: 0 });
            if (r.stdout.trim() !== String(i)) throw new Error(`command ${i} printed ${JSON.stringify(r.stdout)}`);
          }),
        ),
      ),
  });
  return [
    {
      figure: "SDK `commands.run('true')`",
      kind: 'time',
      rounds: LATENCY_SAMPLES,
      sample: (s) => timed(() => s.sandbox.commands.run('true', { user: BENCH_USER })),
    },
    {
      figure: `plain \`GET /files\` ${fmtBytes(TRANSFER)} (\`Accept-Encoding: identity\`)`,
      kind: 'rate',
      sample: async (s) => rate(TRANSFER, await timed(() => download(`${s.url}/files?path=${encodeURIComponent(big)}&username=root`))),
    },
    {
      figure: `SDK \`files.read\` ${fmtBytes(SDK_READ)} (asks for gzip)`,
      kind: 'rate',
      rounds: SMOKE ? 1 : 3,
      sample: async (s) =>
        rate(
          SDK_READ,
          await timed(async () => {
            const b = await s.sandbox.files.read(sdkRead, { format: 'bytes', user: 'root', requestTimeoutMs: 0 });
            if (b.length !== SDK_READ) throw new Error(`read ${b.length} of ${SDK_READ} bytes`);
          }),
        ),
    },
    {
      figure: `SDK \`files.write\` ${fmtBytes(TRANSFER)} octet-stream`,
      kind: 'rate',
      sample: async (s) =>
        rate(
          TRANSFER,
          await timed(() =>
            s.sandbox.files.write(path.join(work, `up-${s.name}.bin`), Readable.toWeb(createReadStream(big)) as ReadableStream<Uint8Array>, {
              user: 'root',
              requestTimeoutMs: 0,
            }),
          ),
        ),
    },
    {
      figure: `SDK \`files.write\` ${fmtBytes(TRANSFER)} multipart`,
      kind: 'rate',
      sample: async (s) => {
        const blob = await openAsBlob(big);
        return rate(TRANSFER, await timed(() => s.sandbox.files.write(path.join(work, `up-${s.name}.bin`), blob, { user: 'root', requestTimeoutMs: 0 })));
      },
    },
    {
      figure: `SDK \`onStdout\` ${fmtBytes(TRANSFER)}`,
      kind: 'rate',
      rounds: SMOKE ? 1 : 3,
      sample: async (s) =>
        rate(
          TRANSFER,
          await timed(async () => {
            let n = 0;
            await s.sandbox.commands.run(stdoutCmd, { user: BENCH_USER, onStdout: (d) => void (n += d.length), timeoutMs: 0 });
            if (n !== TRANSFER) throw new Error(`received ${n} of ${TRANSFER} bytes`);
          }),
        ),
    },
    {
      figure: `stdout ${fmtBytes(TRANSFER)} through a raw Connect client (binary format)`,
      kind: 'rate',
      sample: async (s) =>
        rate(
          TRANSFER,
          await timed(async () => {
            const n = await connectStdout(s.url, stdoutCmd, BENCH_USER);
            if (n !== TRANSFER) throw new Error(`received ${n} of ${TRANSFER} bytes`);
          }),
        ),
    },
    {
      figure: `SDK \`files.list\` ${LIST_ENTRIES.toLocaleString('en')} entries`,
      kind: 'time',
      sample: (s) =>
        timed(async () => {
          const entries = await s.sandbox.files.list(many, { user: 'root' });
          if (entries.length !== LIST_ENTRIES) throw new Error(`listed ${entries.length} of ${LIST_ENTRIES}`);
        }),
    },
    concurrent(SMOKE ? 10 : 200),
    concurrent(SMOKE ? 20 : 1000),
    {
      figure: `${SMOKE ? 20 : 500} concurrent SDK \`files.read\` of a 4 KiB file, wall`,
      kind: 'time',
      sample: (s) => timed(() => Promise.all(Array.from({ length: SMOKE ? 20 : 500 }, () => s.sandbox.files.read(small, { user: 'root' })))),
    },
    {
      figure: 'PTY keystroke echo round trip',
      kind: 'time',
      rounds: SMOKE ? 1 : 5,
      sample: (s) => ptyEcho(s.sandbox, SMOKE ? 3 : 30),
    },
    {
      // Each sample into a directory of its own: every file is created.
      figure: `SDK \`files.write\` of ${SMALL_FILES.toLocaleString('en')} new small files (one multipart request), wall`,
      kind: 'time',
      rounds: SMOKE ? 1 : 3,
      warmup: 0,
      sample: (s) => writeSmallFiles(s, path.join(tree, s.name, `new${(fresh[s.name] = (fresh[s.name] ?? 0) + 1)}`)),
    },
    {
      // The untimed warm-up creates them; every timed sample replaces each one (envd truncates it in
      // place, sandboxd lands a new inode by rename: a cut upload never truncates the old file).
      figure: `SDK \`files.write\` replacing ${SMALL_FILES.toLocaleString('en')} small files (one multipart request), wall`,
      kind: 'time',
      rounds: SMOKE ? 1 : 3,
      warmup: 1,
      sample: (s) => writeSmallFiles(s, path.join(tree, s.name, 'again')),
    },
    {
      figure: `SDK \`files.read\` of ${SMALL_FILES.toLocaleString('en')} small files (64 in flight), wall`,
      kind: 'time',
      rounds: SMOKE ? 1 : 2,
      warmup: 0,
      sample: (s) => {
        const names = Array.from({ length: SMALL_FILES }, (_, i) => path.join(many, `f${i}.txt`));
        return timed(() =>
          pool(names, 64, async (p) => {
            const t = await s.sandbox.files.read(p, { user: 'root' });
            if (t !== 'x') throw new Error(`read ${JSON.stringify(t)} from ${p}`);
          }),
        );
      },
    },
    ...memoryPair(`${(SMOKE ? 20 : 1000).toLocaleString('en')} concurrent \`commands.run\``, (s) =>
      Promise.all(Array.from({ length: SMOKE ? 20 : 1000 }, (_, i) => s.sandbox.commands.run(`echo ${i}`, { user: BENCH_USER, timeoutMs: 0, requestTimeoutMs: 0 }))),
    ),
    ...memoryPair(`${(SMOKE ? 200 : 10_000).toLocaleString('en')} SDK \`files.getInfo\` (Stat, 64 in flight)`, (s) =>
      pool(Array.from({ length: SMOKE ? 200 : 10_000 }, (_, i) => path.join(many, `f${i % LIST_ENTRIES}.txt`)), 64, (p) => s.sandbox.files.getInfo(p, { user: 'root' })),
    ),
    ...memoryPair(`${SMOKE ? 20 : 500} concurrent \`GET /files\` of a 4 KiB file`, (s) =>
      Promise.all(Array.from({ length: SMOKE ? 20 : 500 }, () => download(`${s.url}/files?path=${encodeURIComponent(small)}&username=root`))),
    ),
    watchTask(work, SMOKE ? 3 : 20, SMOKE ? 1 : 5, false),
    watchTask(work, SMOKE ? 3 : 1000, SMOKE ? 1 : 3, true),
  ];
}

/**
 * A `watchDir` row, its bare-Node floor, and each side's CPU per event (a note): `samples` files
 * written one at a time per watch. The daemons' watch path is cold at the first row (~100 events on
 * code that never ran) and warm at the second, as a long-lived watcher runs.
 */
function watchTask(work: string, samples: number, rounds: number, warm: boolean): Task {
  const cpu = new Map<string, { ms: number; events: number }>();
  const label = warm ? `\`watchDir\` event latency, warm (${samples.toLocaleString('en')} events per sample)` : '`watchDir` event latency';
  return {
    figure: label,
    kind: 'time',
    rounds,
    sample: async (s) => {
      const got = await watchLatency(s.sandbox, path.join(work, `watch-${s.name}-${Math.random().toString(36).slice(2)}`), samples, s.pid);
      const c = cpu.get(s.name) ?? { ms: 0, events: 0 };
      cpu.set(s.name, { ms: c.ms + got.cpu, events: c.events + samples });
      return got.ms;
    },
    note: () =>
      `${label}: CPU per event (run time of the serving process's threads over every round's timed events, the warm-up round included): ${[...cpu]
        .map(([n, c]) => `${n} ${fmtMs(c.ms / c.events)}`)
        .join(', ')}`,
    floor: {
      figure: `floor: the same${warm ? ' warm' : ''} \`watchDir\` events from a bare \`node:http\` server writing each \`fs.watch\` event straight to the response`,
      start: startWatchFloor,
    },
  };
}

async function makeFile(p: string, size: number, random = false): Promise<void> {
  const { open } = await import('node:fs/promises');
  const fh = await open(p, 'w');
  for (let off = 0; off < size; off += MiB) {
    const chunk = random ? (await import('node:crypto')).randomBytes(MiB) : Buffer.alloc(MiB, 7);
    await fh.write(chunk, 0, Math.min(MiB, size - off));
  }
  await fh.close();
}

/** The envd face against envd: one interleaved run per figure. */
export async function envdPeerFigures(work: string): Promise<PeerFigure[]> {
  const bin = process.env.ENVD_BIN;
  const skip = bin ? undefined : 'ENVD_BIN not set: envd not run (see README, "Benchmarks against envd")';
  if (skip) process.stderr.write(`bench: ${skip}\n`);
  mkdirSync(work, { recursive: true });
  ensureUser(BENCH_USER);
  await makeFile(path.join(work, 'big.bin'), TRANSFER);
  await makeFile(path.join(work, 'sdk-read.bin'), SDK_READ, true);
  writeFileSync(path.join(work, 'small.txt'), Buffer.alloc(4096, 'a'));
  mkdirSync(path.join(work, 'many'));
  for (let i = 0; i < LIST_ENTRIES; i++) writeFileSync(path.join(work, 'many', `f${i}.txt`), 'x');

  let envd: { child: ChildProcess; url: string } | undefined;
  let ours: RunningDaemon | undefined;
  const out: PeerFigure[] = [];
  let sides: Side[] = [];
  const start = async (): Promise<void> => {
    ours = await startDaemon({ port: 0, args: ['--log-level', 'info'] });
    sides = [];
    if (bin) {
      envd = await startEnvd(bin);
      sides.push({ name: 'envd', url: envd.url, pid: envd.child.pid!, sandbox: await Sandbox.create({ debug: true, sandboxUrl: envd.url }) });
    }
    sides.push({ name: 'sandboxd', url: ours.url, pid: ours.child.pid!, sandbox: await Sandbox.create({ debug: true, sandboxUrl: ours.url }) });
  };
  const stop = async (): Promise<void> => {
    if (envd) await stopChild(envd.child);
    await ours?.stop();
    envd = undefined;
    ours = undefined;
  };
  try {
    await start();
    for (const task of envdTasks(work)) {
      if (ONLY && !ONLY.test(task.figure)) continue;
      if (task.fresh) {
        await stop();
        await start();
      }
      process.stderr.write(`bench: ${task.figure} (${sides.map((s) => s.name).join(' vs ')}) …\n`);
      try {
        const floor = await task.floor?.start();
        let medians: number[];
        try {
          medians = await interleave(floor ? [...sides.slice(0, -1), floor, sides.at(-1)!] : sides, task.rounds ?? ROUNDS, task.sample, Math.min(WARMUP, task.warmup ?? 1));
        } finally {
          await floor?.close();
        }
        const o = medians.at(-1)!;
        const t = bin ? medians[0] : undefined;
        const ratio = t === undefined ? undefined : task.kind === 'rate' ? o / t : t / o;
        out.push({ figure: task.figure, peer: 'envd', theirs: t, ours: o, kind: task.kind, ratio, note: skip ?? task.note?.() });
        process.stderr.write(`bench:   envd ${fmt(task.kind, t)}, sandboxd ${fmt(task.kind, o)}, ratio ${ratio?.toFixed(2) ?? '—'}\n`);
        if (task.floor) {
          const f = medians.at(-2)!;
          out.push({ figure: task.floor.figure, peer: 'envd', theirs: f, ours: f, kind: task.kind, ratio: undefined });
          process.stderr.write(`bench:   floor ${fmt(task.kind, f)}${task.note ? `; ${task.note()}` : ''}\n`);
        }
      } catch (err) {
        out.push({ figure: task.figure, peer: 'envd', theirs: undefined, ours: undefined, kind: task.kind, ratio: undefined, error: (err as Error).message });
      }
      rmSync(path.join(work, 'tree'), { recursive: true, force: true });
    }
  } finally {
    await stop();
  }
  return out;
}

/** The python that runs AgentScope's gateway: AGENTSCOPE_PYTHON, else the bench venv. */
function agentscopePython(): string | undefined {
  const p = process.env.AGENTSCOPE_PYTHON ?? path.join(ROOT, 'bench/tmp/venv/bin/python');
  return existsSync(p) ? p : undefined;
}

interface Gateway {
  name: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function startAgentscopeGateway(python: string): Promise<Gateway> {
  const port = await freePort();
  const child = spawn(python, ['-m', 'agentscope.workspace._mcp_gateway', '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(`${url}/health`, child, 'AgentScope gateway').catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}: ${stderr}`);
  });
  return { name: 'AgentScope', url, pid: child.pid!, stop: () => stopChild(child) };
}

async function startOurGateway(): Promise<Gateway> {
  const d = await startDaemon({ port: 0, gatewayPort: 'free', args: ['--log-level', 'info'] });
  return { name: 'sandboxd', url: d.gatewayUrl, pid: d.child.pid!, stop: async () => void (await d.stop()) };
}

const SPEC = { is_stateful: true, mcp_config: { type: 'stdio_mcp', command: process.execPath, args: [EVERYTHING, 'stdio'] } };

async function register(g: Gateway, name: string): Promise<void> {
  const res = await fetch(`${g.url}/mcps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, ...SPEC }) });
  if (!res.ok) throw new Error(`${g.name}: register answered ${res.status}: ${await res.text()}`);
}

async function unregister(g: Gateway, name: string): Promise<void> {
  const res = await fetch(`${g.url}/mcps/${name}`, { method: 'DELETE' });
  if (!res.ok) throw new Error(`${g.name}: delete answered ${res.status}`);
}

async function echo(g: Gateway, name: string): Promise<void> {
  const status = await postJson(`${g.url}/mcps/${name}/tools/echo`, { arguments: { message: 'hi' } });
  if (status !== 200) throw new Error(`${g.name}: echo answered ${status}`);
}

/** Something that makes one `echo` call: a gateway's REST route, or the floor's direct client. */
interface Echoer {
  name: string;
  echo(): Promise<void>;
}

/**
 * The floor of the `echo` row: the same call, by the MCP SDK's client (what sandboxd's gateway calls
 * its upstream with), straight to its own server-everything over stdio, started as the gateways
 * start theirs. What a gateway's round trip costs beyond it is the gateway's own work.
 */
async function startDirectEcho(): Promise<Echoer & { close(): Promise<void> }> {
  const client = new Client({ name: 'bench', version: '1' });
  await client.connect(new StdioClientTransport({ command: SPEC.mcp_config.command, args: SPEC.mcp_config.args, stderr: 'ignore' }));
  return {
    name: 'direct stdio client',
    echo: async () => {
      const r = await client.callTool({ name: 'echo', arguments: { message: 'hi' } });
      if (r.isError) throw new Error(`direct echo failed: ${JSON.stringify(r.content)}`);
    },
    close: () => client.close(),
  };
}

/**
 * The other half of the floor: the same REST request from the same client to a bare `node:http`
 * server in its own process that reads the body and answers `{}`, the HTTP hop any gateway pays.
 */
async function startBareHttp(): Promise<Echoer & { close(): Promise<void> }> {
  const port = await freePort();
  const server = `require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => { s.setHeader('content-type', 'application/json'); s.end('{}'); }); }).listen(${port}, '127.0.0.1')`;
  const child = spawn(process.execPath, ['-e', server], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, child, 'bare node:http server');
  return {
    name: 'bare node:http',
    echo: async () => {
      const status = await postJson(`${url}/mcps/ev/tools/echo`, { arguments: { message: 'hi' } });
      if (status !== 200) throw new Error(`bare server answered ${status}`);
    },
    close: () => stopChild(child),
  };
}

/** One line per process of a gateway's tree, for the RSS rows' note. */
function describeTree(g: Gateway): string {
  return processTree(g.pid)
    .map((p) => `${p.cmd.slice(0, 60)} ${fmtBytes(p.rss)}`)
    .join(' + ');
}

/** The gateway face against AgentScope's gateway. */
export async function gatewayPeerFigures(): Promise<PeerFigure[]> {
  const python = agentscopePython();
  const skip = python ? undefined : 'AgentScope venv missing: run `sh bench/agentscope-venv.sh` (see README)';
  if (skip) process.stderr.write(`bench: ${skip}\n`);
  const gateways: Gateway[] = [];
  const out: PeerFigure[] = [];
  const notes: string[] = [];
  let echoFloor: number | undefined;
  let httpFloor: number | undefined;
  let echoMedians: number[] | undefined;
  const push = (figure: string, kind: Kind, medians: number[], higherIsBetter = false): void => {
    const o = medians.at(-1)!;
    const t = python ? medians[0] : undefined;
    const ratio = figure.startsWith('floor') || t === undefined ? undefined : higherIsBetter ? o / t : t / o;
    out.push({ figure, peer: 'AgentScope gateway', theirs: t, ours: o, kind, ratio, note: skip ?? (notes.length > 0 ? notes.splice(0).join('; ') : undefined) });
  };
  try {
    if (python) gateways.push(await startAgentscopeGateway(python));
    // Freshly started: the daemon has served nothing but the gateway rows below (no envd-face work).
    gateways.push(await startOurGateway());
    notes.push(`RSS at start (nothing registered): ${gateways.map((g) => `${g.name} ${fmtBytes(ownRss(g.pid).rss)}`).join(', ')}`);
    const steps: [string, Kind, () => Promise<number[]>][] = [
      [
        'gateway: register server-everything (stdio), until its tools are listed',
        'time',
        () =>
          interleave(gateways, SMOKE ? 1 : 5, async (s) => {
            const ms = await timed(() => register(s, 'reg'));
            await unregister(s, 'reg');
            return ms;
          }),
      ],
      [
        'gateway: `echo` round trip through `POST /mcps/{name}/tools/echo`',
        'time',
        async () => {
          for (const x of gateways) await register(x, 'ev');
          // The floors are measured in the same rounds, between the two gateways.
          const direct = await startDirectEcho();
          const bare = await startBareHttp().catch(async (err: unknown) => {
            await direct.close();
            throw err;
          });
          try {
            const sides: Echoer[] = gateways.map((g) => ({ name: g.name, echo: () => echo(g, 'ev') }));
            sides.splice(sides.length - 1, 0, direct, bare);
            const medians = await interleave(sides, LATENCY_SAMPLES * 2, (s) => timed(() => s.echo()), SMOKE ? 1 : 5);
            [echoFloor, httpFloor] = medians.slice(-3, -1);
            echoMedians = [...medians.slice(0, -3), medians.at(-1)!];
            return echoMedians;
          } finally {
            await direct.close();
            await bare.close();
          }
        },
      ],
      [
        'floor: the same `echo` by the MCP SDK client straight to server-everything over stdio (no gateway)',
        'time',
        async () => {
          if (echoFloor === undefined) throw new Error('measured with the echo row: select both (BENCH_ONLY=echo)');
          return gateways.map(() => echoFloor!);
        },
      ],
      [
        'floor: the same REST request to a bare `node:http` server answering `{}` (the HTTP hop alone)',
        'time',
        async () => {
          if (httpFloor === undefined) throw new Error('measured with the echo row: select both (BENCH_ONLY=echo)');
          return gateways.map(() => httpFloor!);
        },
      ],
      [
        'gateway: what the gateway adds to that floor (`echo` round trip − floor)',
        'time',
        async () => {
          if (echoFloor === undefined || echoMedians === undefined) throw new Error('measured with the echo row: select both (BENCH_ONLY=echo)');
          const [theirs, ours] = [echoMedians[0]!, echoMedians.at(-1)!];
          if (python) {
            notes.push(
              `\`echo\`: floor ${fmtMs(echoFloor)} (MCP client + upstream), HTTP hop ${fmtMs(httpFloor ?? NaN)}; 2× AgentScope's round trip needs sandboxd ≤ ${fmtMs(theirs / 2)}, i.e. a gateway adding ≤ ${fmtMs(theirs / 2 - echoFloor)} to the floor, HTTP hop included (sandboxd adds ${fmtMs(ours - echoFloor)}, AgentScope ${fmtMs(theirs - echoFloor)})`,
            );
          }
          return echoMedians.map((m) => m - echoFloor!);
        },
      ],
      [
        'gateway: 50 concurrent `echo` calls, wall',
        'time',
        () => interleave(gateways, SMOKE ? 1 : 10, (s) => timed(() => Promise.all(Array.from({ length: 50 }, () => echo(s, 'ev'))))),
      ],
      [
        'gateway: RSS of the gateway process and its upstream after the calls above',
        'bytes',
        async () => {
          notes.push(`RSS trees after the calls: ${gateways.map((g) => `${g.name}: ${describeTree(g)}`).join('; ')}`);
          return gateways.map((x) => treeRss(x.pid));
        },
      ],
      ['gateway: RSS of the gateway process alone', 'bytes', async () => gateways.map((x) => ownRss(x.pid).rss)],
      // Without the pages mapped from its executable and libraries (clean, shared, reclaimable): the
      // single executable maps ~60-70 MiB of its own file, Python ~22 MiB.
      ['gateway: anonymous (private) RSS of the gateway process alone', 'bytes', async () => gateways.map((x) => ownRss(x.pid).anon)],
      ['gateway: RSS of its upstream (server-everything) alone', 'bytes', async () => gateways.map((x) => treeRss(x.pid) - ownRss(x.pid).rss)],
    ];
    for (const [figure, kind, run] of steps) {
      if (ONLY && !ONLY.test(figure)) continue;
      process.stderr.write(`bench: ${figure} (${gateways.map((x) => x.name).join(' vs ')}) …\n`);
      try {
        push(figure, kind, await run());
      } catch (err) {
        out.push({ figure, peer: 'AgentScope gateway', theirs: undefined, ours: undefined, kind, ratio: undefined, error: (err as Error).message });
      }
    }
  } finally {
    for (const x of gateways) await x.stop();
  }
  return out;
}

/** The markdown tables for the peer figures. */
export function peerTables(figs: PeerFigure[]): string[] {
  const lines: string[] = [];
  for (const peer of ['envd', 'AgentScope gateway']) {
    const rows = figs.filter((f) => f.peer === peer);
    if (rows.length === 0) continue;
    const notes = [...new Set(rows.map((f) => f.note).filter(Boolean))];
    lines.push('', `Against ${peer} (interleaved, medians; ratio = sandboxd's speed ÷ ${peer}'s, > 1 means sandboxd is faster; for RSS, ${peer}'s ÷ sandboxd's):`, '');
    if (notes.length > 0) lines.push(...notes.map((n) => `_${n}_`), '');
    lines.push(`| figure | ${peer} | sandboxd | ratio |`, '|---|---|---|---|');
    for (const f of rows) {
      const ours = f.error ? `failed: ${f.error}` : fmt(f.kind, f.ours);
      lines.push(`| ${f.figure} | ${fmt(f.kind, f.theirs)} | ${ours} | ${f.ratio === undefined ? '—' : f.ratio.toFixed(2)} |`);
    }
  }
  return lines;
}
