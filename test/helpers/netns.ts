import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Why namespace tests cannot run here (not root, tools missing), or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  for (const tool of ['unshare', 'nsenter', 'ip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs '${tool}' (util-linux, iproute2)`;
  }
  return undefined;
}

export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/** Runs a command inside the network namespace of `pid`. */
export function inNetns(pid: number, cmd: string, args: string[]): string {
  return run('nsenter', [`--net=/proc/${pid}/ns/net`, cmd, ...args]);
}

/**
 * A second network namespace ("outside") joined by a veth pair to the namespace of `insidePid`:
 * `outsideCidr` on the outside end, `insideCidr` on the inside end (named `ext0`). Kill the returned
 * holder to remove it; the veth pair goes with the namespaces.
 */
export async function connectOutside(insidePid: number, outsideCidr: string, insideCidr: string): Promise<ChildProcess> {
  const holder = spawn('unshare', ['--net', 'sh', '-c', 'ip link set lo up && echo ready && exec sleep 3600'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: holder.stdout! });
    lines.on('line', (l) => {
      if (l === 'ready') {
        lines.close();
        resolve();
      }
    });
    holder.once('exit', (code) => reject(new Error(`the outside namespace exited with ${code}`)));
  });
  const pid = holder.pid!;
  inNetns(pid, 'ip', ['link', 'add', 'out0', 'type', 'veth', 'peer', 'name', 'ext0', 'netns', String(insidePid)]);
  inNetns(pid, 'ip', ['addr', 'add', outsideCidr, 'dev', 'out0']);
  inNetns(pid, 'ip', ['link', 'set', 'out0', 'up']);
  inNetns(insidePid, 'ip', ['addr', 'add', insideCidr, 'dev', 'ext0']);
  inNetns(insidePid, 'ip', ['link', 'set', 'ext0', 'up']);
  return holder;
}

export interface HttpProbe {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}
export type HttpProbeResult = { status: number; body: string } | { error: string };

const PROBE = `
const probes = JSON.parse(process.argv[1]);
const out = [];
for (const p of probes) {
  try {
    const res = await fetch(p.url, { method: p.method, headers: p.headers, body: p.body, signal: AbortSignal.timeout(5000) });
    out.push({ status: res.status, body: await res.text() });
  } catch (err) {
    out.push({ error: err.cause?.code ?? err.name });
  }
}
console.log(JSON.stringify(out));
`;

/** Sends each request in turn from inside the network namespace of `pid` (one node process for all). */
export function probeFrom(pid: number, probes: HttpProbe[]): HttpProbeResult[] {
  return JSON.parse(inNetns(pid, process.execPath, ['--input-type=module', '-e', PROBE, JSON.stringify(probes)])) as HttpProbeResult[];
}
