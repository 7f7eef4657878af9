/**
 * sandboxd benchmarks: every figure is a ratio against a floor that does the same work without
 * sandboxd, measured side by side in this run (medians after a warm-up).
 *
 *   npm run bench                 full sizes (256 MiB transfers, 10,000-entry listing, 200 concurrent runs)
 *   BENCH_SMOKE=1 npm run bench   tiny sizes, to keep the harness from rotting
 *   BENCH_EXECUTABLE=0            leaves out the single executable's start and RSS rows (bench/executable.ts)
 *   BENCH_FLOORS=0                leaves out the floor table: only the peer figures run (with BENCH_ONLY, a few)
 *   BENCH_FLOORS=executable       of the floor table, only the single executable's rows (after `npm run package`)
 *   BENCH_RUNS=N                  N timed runs per figure instead of 7 (e.g. medians of 21 starts)
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { lstat, readdir } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Sandbox } from 'e2b';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startDaemon, ROOT, type RunningDaemon } from '../test/helpers/daemon.js';
import { ensureUser } from '../test/integration/files-support.js';
import { executableFigures } from './executable.js';
import { envdPeerFigures, gatewayPeerFigures, peerTables, type PeerFigure } from './peers.js';
import { download, fmtBytes, fmtMs, fmtRate, median, MiB, now, percentile, postJson, rssOf, spawnCount, timeRuns, upload } from './lib.js';

const SMOKE = process.env.BENCH_SMOKE === '1';
const TRANSFER = SMOKE ? 2 * MiB : 256 * MiB;
const LIST_ENTRIES = SMOKE ? 200 : 10_000;
const CONCURRENT = SMOKE ? 20 : 200;
const RUNS = Number(process.env.BENCH_RUNS) || (SMOKE ? 3 : 7);
const LATENCY_RUNS = SMOKE ? 5 : 50;
const WARMUP = SMOKE ? 1 : 3;

const WORK = path.join(os.tmpdir(), `sandboxd-bench-${process.pid}`);
const EVERYTHING = path.join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

export interface Figure {
  figure: string;
  floor: string;
  value: string;
  ratio: number | undefined;
  goal: string;
  holds: boolean | undefined;
  error?: string;
}

const figures: Figure[] = [];

async function figure(name: string, floor: string, goal: string, fn: () => Promise<Omit<Figure, 'figure' | 'floor' | 'goal'>>): Promise<void> {
  process.stderr.write(`bench: ${name} …\n`);
  try {
    figures.push({ figure: name, floor, goal, ...(await fn()) });
  } catch (err) {
    figures.push({ figure: name, floor, goal, value: 'failed', ratio: undefined, holds: false, error: (err as Error).message });
  }
}

/** A bare node:http server's start to first answer, the floor for the daemon's startup. */
async function bareServerStart(): Promise<number> {
  const script = `require('http').createServer((q,s)=>{s.statusCode=204;s.end()}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`;
  const t = now();
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  const res = await fetch(`http://127.0.0.1:${port}/`);
  const ms = now() - t;
  if (res.status !== 204) throw new Error('bare server did not answer');
  child.kill();
  return ms;
}

async function daemonStart(): Promise<number> {
  const t = now();
  const d = await startDaemon({ port: 0 });
  const ms = now() - t;
  await d.stop();
  return ms;
}

/** A plain node:http server that streams files and writes uploads to disk: the transfer floor. */
function floorServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const p = u.searchParams.get('path') ?? '';
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      pipeline(createReadStream(p, { highWaterMark: 256 * 1024 }), res).catch(() => res.destroy());
    } else {
      pipeline(req, createWriteStream(p)).then(
        () => res.end('ok'),
        () => res.destroy(),
      );
    }
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      resolve({ url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => server.close(() => r())) });
    }),
  );
}

async function makeFile(p: string, size: number): Promise<void> {
  const fh = await open(p, 'w');
  const chunk = Buffer.alloc(MiB, 7);
  for (let off = 0; off < size; off += chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, size - off));
  await fh.close();
}

/** The figures against same-work floors, and the RSS the daemon had before and after them. */
async function floorFigures(): Promise<void> {
  mkdirSync(WORK, { recursive: true });
  const results: { idleRss?: number; afterRss?: number } = {};

  await figure('start to first `/health` answer', 'a bare `node:http` server start', 'report the ratio', async () => {
    const floor = median(await timeRuns(RUNS, 1, bareServerStart));
    await daemonStart(); // warm the file cache
    const ours: number[] = [];
    for (let i = 0; i < RUNS; i++) ours.push(await daemonStart());
    const m = median(ours);
    return { value: `${fmtMs(m)} (floor ${fmtMs(floor)})`, ratio: m / floor, holds: undefined };
  });

  let d: RunningDaemon | undefined;
  try {
    d = await startDaemon({ port: 49983, gatewayPort: 'free' });
    const daemon = d;
    await new Promise((r) => setTimeout(r, 1000));
    results.idleRss = rssOf(daemon.child.pid!);
    const sandbox = await Sandbox.create({ debug: true });

    await figure('SDK `commands.run(\'true\')` median', "spawning `bash -l -c true` directly from Node", '≤ 1.5×', async () => {
      const floor = median(await timeRuns(LATENCY_RUNS, WARMUP, () => spawnCount('bash', ['-l', '-c', 'true'])));
      const ours = median(await timeRuns(LATENCY_RUNS, WARMUP, () => sandbox.commands.run('true')));
      const ratio = ours / floor;
      return { value: `${fmtMs(ours)} (floor ${fmtMs(floor)})`, ratio, holds: ratio <= 1.5 };
    });

    const floorSrv = await floorServer();
    const bigFile = path.join(WORK, 'big.bin');
    await makeFile(bigFile, TRANSFER);
    try {
      await figure(`${fmtBytes(TRANSFER)} download through \`/files\``, 'a plain `node:http` server streaming the same file, same client', '≥ 0.8× throughput', async () => {
        const q = `path=${encodeURIComponent(bigFile)}`;
        const floor = median(await timeRuns(RUNS, 1, () => download(`${floorSrv.url}/?${q}`)));
        const ours = median(await timeRuns(RUNS, 1, () => download(`${daemon.url}/files?${q}`)));
        const ratio = floor / ours;
        return { value: `${fmtRate(TRANSFER, ours)} (floor ${fmtRate(TRANSFER, floor)})`, ratio, holds: ratio >= 0.8 };
      });

      await figure(`${fmtBytes(TRANSFER)} octet-stream upload`, 'a plain `node:http` server writing the body to disk', '≥ 0.8×', async () => {
        const target = path.join(WORK, 'up.bin');
        const headers = { 'content-type': 'application/octet-stream', 'content-length': String(TRANSFER) };
        const floor = median(await timeRuns(RUNS, 1, () => upload(`${floorSrv.url}/?path=${encodeURIComponent(target)}`, createReadStream(bigFile), headers)));
        const ours = median(await timeRuns(RUNS, 1, () => upload(`${daemon.url}/files?path=${encodeURIComponent(target)}`, createReadStream(bigFile), headers)));
        const ratio = floor / ours;
        return { value: `${fmtRate(TRANSFER, ours)} (floor ${fmtRate(TRANSFER, floor)})`, ratio, holds: ratio >= 0.8 };
      });
    } finally {
      await floorSrv.close();
      rmSync(bigFile, { force: true });
      rmSync(path.join(WORK, 'up.bin'), { force: true });
    }

    await figure(`${fmtBytes(TRANSFER)} of stdout through a Start stream (SDK \`onStdout\`)`, 'spawning the same command and reading its pipe', '≥ 0.5×', async () => {
      const cmd = `head -c ${TRANSFER} /dev/zero`;
      const floor = median(await timeRuns(RUNS, 1, () => spawnCount('bash', ['-l', '-c', cmd])));
      const ours = median(
        await timeRuns(RUNS, 1, async () => {
          let n = 0;
          await sandbox.commands.run(cmd, { onStdout: (s) => void (n += s.length), timeoutMs: 0 });
          if (n !== TRANSFER) throw new Error(`received ${n} of ${TRANSFER} bytes`);
        }),
      );
      const ratio = floor / ours;
      return { value: `${fmtRate(TRANSFER, ours)} (floor ${fmtRate(TRANSFER, floor)})`, ratio, holds: ratio >= 0.5 };
    });

    await figure(`\`files.list\` of a ${LIST_ENTRIES.toLocaleString('en')}-entry directory`, 'in-process `readdir` + `lstat`', '≤ 3×', async () => {
      const dir = path.join(WORK, 'many');
      mkdirSync(dir, { recursive: true });
      for (let i = 0; i < LIST_ENTRIES; i++) writeFileSync(path.join(dir, `f${i}.txt`), '');
      try {
        const floor = median(
          await timeRuns(RUNS, WARMUP, async () => {
            const names = await readdir(dir);
            await Promise.all(names.map((n) => lstat(path.join(dir, n))));
          }),
        );
        const ours = median(
          await timeRuns(RUNS, WARMUP, async () => {
            const entries = await sandbox.files.list(dir);
            if (entries.length !== LIST_ENTRIES) throw new Error(`listed ${entries.length} of ${LIST_ENTRIES}`);
          }),
        );
        const ratio = ours / floor;
        return { value: `${fmtMs(ours)} (floor ${fmtMs(floor)})`, ratio, holds: ratio <= 3 };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    await figure('gateway `echo` via `/mcps/…/tools/echo` and via `/mcp`', 'a direct stdio MCP client call', '≤ 1.3×', async () => {
      const direct = new Client({ name: 'bench', version: '1' });
      await direct.connect(new StdioClientTransport({ command: process.execPath, args: [EVERYTHING, 'stdio'], stderr: 'ignore' }));
      const echo = { name: 'echo', arguments: { message: 'hi' } };
      const floor = median(await timeRuns(LATENCY_RUNS, WARMUP, () => direct.callTool(echo)));
      await direct.close();

      const reg = await fetch(`${daemon.gatewayUrl}/mcps`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'ev', is_stateful: true, mcp_config: { type: 'stdio_mcp', command: process.execPath, args: [EVERYTHING, 'stdio'] } }),
      });
      if (!reg.ok) throw new Error(`register answered ${reg.status}: ${await reg.text()}`);
      const rest = median(
        await timeRuns(LATENCY_RUNS, WARMUP, async () => {
          const status = await postJson(`${daemon.gatewayUrl}/mcps/ev/tools/echo`, { arguments: { message: 'hi' } });
          if (status !== 200) throw new Error(`tool call answered ${status}`);
        }),
      );
      const viaMcp = new Client({ name: 'bench', version: '1' });
      await viaMcp.connect(new StreamableHTTPClientTransport(new URL(`${daemon.gatewayUrl}/mcp`)));
      const mcp = median(await timeRuns(LATENCY_RUNS, WARMUP, () => viaMcp.callTool({ name: 'ev__echo', arguments: { message: 'hi' } })));
      await viaMcp.close();
      await fetch(`${daemon.gatewayUrl}/mcps/ev`, { method: 'DELETE' });
      const ratio = Math.max(rest, mcp) / floor;
      return {
        value: `REST ${fmtMs(rest)}, /mcp ${fmtMs(mcp)} (floor ${fmtMs(floor)}; ${(rest / floor).toFixed(2)}× / ${(mcp / floor).toFixed(2)}×)`,
        ratio,
        holds: ratio <= 1.3,
      };
    });

    await figure(`${CONCURRENT} concurrent \`commands.run\` as \`user\``, `${CONCURRENT} concurrent \`bash -l -c\` spawned directly as \`user\``, '0 failures; p50 and p99 reported', async () => {
      // As `user`, E2B's default user: root's login profile on a dev machine (pyenv init and the like)
      // would measure the profile, not the daemon.
      const u = ensureUser('user');
      const direct: number[] = [];
      await Promise.all(
        Array.from({ length: CONCURRENT }, async (_, i) => {
          const t = now();
          await spawnCount('setpriv', ['--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups', '--', 'bash', '-l', '-c', `echo ${i}`], { HOME: u.home, USER: 'user' });
          direct.push(now() - t);
        }),
      );
      const lat: number[] = [];
      let failures = 0;
      await Promise.all(
        Array.from({ length: CONCURRENT }, async (_, i) => {
          const t = now();
          try {
            const r = await sandbox.commands.run(`echo ${i}`, { user: 'user' });
            if (r.stdout.trim() !== String(i)) failures++;
          } catch {
            failures++;
          }
          lat.push(now() - t);
        }),
      );
      return {
        value: `${failures} failures; p50 ${fmtMs(percentile(lat, 50))}, p99 ${fmtMs(percentile(lat, 99))} (direct p50 ${fmtMs(percentile(direct, 50))}, p99 ${fmtMs(percentile(direct, 99))})`,
        ratio: percentile(lat, 50) / percentile(direct, 50),
        holds: failures === 0,
      };
    });

    results.afterRss = rssOf(daemon.child.pid!);
  } finally {
    await d?.stop();
    rmSync(WORK, { recursive: true, force: true });
  }

  if (process.env.BENCH_EXECUTABLE !== '0') {
    mkdirSync(WORK, { recursive: true });
    try {
      await executableFigures(figure, { runs: RUNS, smoke: SMOKE, work: WORK });
    } finally {
      rmSync(WORK, { recursive: true, force: true });
    }
  }

  figures.push({
    figure: 'idle RSS; RSS after the runs above',
    floor: '—',
    value: `${fmtBytes(results.idleRss ?? NaN)}; ${fmtBytes(results.afterRss ?? NaN)}`,
    ratio: undefined,
    goal: '≤ 64 MiB; ≤ 160 MiB',
    holds: (results.idleRss ?? Infinity) <= 64 * MiB && (results.afterRss ?? Infinity) <= 160 * MiB,
    ...(results.afterRss === undefined ? { error: 'RSS after the runs was not measured' } : {}),
  });
}

async function main(): Promise<void> {
  if (process.env.BENCH_FLOORS === 'executable') {
    mkdirSync(WORK, { recursive: true });
    try {
      await executableFigures(figure, { runs: RUNS, smoke: SMOKE, work: WORK });
    } finally {
      rmSync(WORK, { recursive: true, force: true });
    }
  } else if (process.env.BENCH_FLOORS !== '0') await floorFigures();
  const peers: PeerFigure[] = [];
  try {
    peers.push(...(await envdPeerFigures(path.join(WORK, 'peers'))), ...(await gatewayPeerFigures()));
  } finally {
    rmSync(WORK, { recursive: true, force: true });
  }

  const lines = [
    `# sandboxd benchmark results${SMOKE ? ' (smoke sizes)' : ''}`,
    '',
    `${new Date().toISOString()} · ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'} · Node ${process.version}`,
    '',
    '| figure | floor | sandboxd | ratio | goal | holds |',
    '|---|---|---|---|---|---|',
    ...figures.map(
      (f) =>
        `| ${f.figure} | ${f.floor} | ${f.error ? `${f.value}: ${f.error}` : f.value} | ${f.ratio === undefined ? '—' : `${f.ratio.toFixed(2)}×`} | ${f.goal} | ${f.holds === undefined ? '—' : f.holds ? 'yes' : 'no'} |`,
    ),
    ...peerTables(peers),
    '',
  ];
  const table = lines.join('\n');
  process.stdout.write(table);
  const out = process.env.BENCH_OUT ?? path.join(ROOT, 'bench', SMOKE ? 'results-smoke.md' : 'results.md');
  writeFileSync(out, table);
  writeFileSync(out.replace(/\.md$/, '.json'), JSON.stringify(figures, null, 2));
  writeFileSync(out.replace(/\.md$/, '.peers.json'), JSON.stringify(peers, null, 2));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
