import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Process, type ProcessConfigSchema, type PTYSchema } from '../../src/gen/process/process_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { GatewayApi, processesWith, stdioSpec } from './gateway-support.js';
import { startPicodDaemon, type PicodDaemon } from './picod-support.js';

/**
 * The daemon in cgroups of its own. Nothing here touches the machine's cgroups: the test makes a
 * scratch cgroup at the top of the cgroup v2 hierarchy, starts the daemon in it (a shell writes its
 * pid there and execs the daemon), and kills and removes everything in it afterwards.
 */

const CGROUP2_SUPER_MAGIC = 0x63677270;

/** Where cgroup v2 is mounted: /sys/fs/cgroup on a pure v2 machine, …/unified on a hybrid one. */
function cgroup2Mount(): string | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.split(' ')[0] !== 'cgroup2') continue;
    const fields = pre!.split(' ');
    if (fields[3] === '/') return fields[4];
  }
  return undefined;
}

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'it needs root to make a scratch cgroup';
  const mount = cgroup2Mount();
  if (mount === undefined) return 'no cgroup v2 hierarchy is mounted';
  if (statfsSync(mount).type !== CGROUP2_SUPER_MAGIC) return `${mount} is not cgroup2`;
  const probe = path.join(mount, `sandboxd-probe-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
  } catch (err) {
    return `${mount} is not writable here (${(err as Error).message})`;
  }
  return undefined;
}

const skip = whyNot();
if (skip) console.log(`skipping the cgroup placement tests: ${skip}`);
const MOUNT = cgroup2Mount() ?? '/sys/fs/cgroup';

function cgroupOf(pid: number | 'self'): string {
  return /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1] ?? '';
}

async function run(d: RunningDaemon, process: MessageInitShape<typeof ProcessConfigSchema>, extra: { pty?: MessageInitShape<typeof PTYSchema> } = {}, headers: Record<string, string> = {}): Promise<{ out: string; exit: number }> {
  const client = createClient(Process, createConnectTransport({ baseUrl: d.url, httpVersion: '1.1' }));
  let out = '';
  let exit = -1;
  for await (const r of client.start({ process, ...extra }, { headers })) {
    const e = r.event?.event;
    if (e?.case === 'data') out += Buffer.from(e.value.output.value as Uint8Array).toString();
    if (e?.case === 'end') exit = e.value.exitCode;
  }
  return { out, exit };
}

/** Kills whatever is left in the scratch tree and removes its cgroups, deepest first. */
async function removeTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  writeFileSync(path.join(dir, 'cgroup.kill'), '1');
  for (let i = 0; i < 100 && /populated 1/.test(readFileSync(path.join(dir, 'cgroup.events'), 'utf8')); i++) await sleep(50);
  for (const leaf of ['sandbox/user', 'sandbox/ptys', 'sandbox', 'daemon', '.']) {
    const p = path.join(dir, leaf);
    if (existsSync(p)) rmdirSync(p);
  }
}

describe.skipIf(skip !== undefined)('a daemon started in a writable cgroup v2', () => {
  const name = `sandboxd-test-${randomBytes(6).toString('hex')}`;
  const scratch = path.join(MOUNT, name);
  const offered = () => readFileSync(path.join(scratch, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  let d: RunningDaemon;
  let picod: PicodDaemon;

  beforeAll(async () => {
    mkdirSync(scratch);
    // Small ceilings for the children, so the limit tests stay gentle: the daemon cuts theirs from these.
    if (offered().includes('pids')) writeFileSync(path.join(scratch, 'pids.max'), '400');
    if (offered().includes('memory')) {
      writeFileSync(path.join(scratch, 'memory.max'), String(512 * 1024 * 1024));
      // With swap the hog below would be swapped out rather than killed.
      if (existsSync(path.join(scratch, 'memory.swap.max'))) writeFileSync(path.join(scratch, 'memory.swap.max'), '0');
    }
    picod = await startPicodDaemon({
      cgroups: true,
      gatewayPort: 'free',
      args: ['--cgroup-root', MOUNT],
      wrap: ['/bin/sh', '-c', `echo $$ > ${scratch}/cgroup.procs && exec "$0" "$@"`],
    });
    d = picod.daemon;
  });
  afterAll(async () => {
    await d?.stop();
    if (picod) rmSync(picod.workspace, { recursive: true, force: true });
    await removeTree(scratch);
    expect(existsSync(scratch)).toBe(false);
  });

  it('moves itself into a leaf, leaving its own cgroup empty', () => {
    expect(cgroupOf(d.child.pid!)).toBe(`/${name}/daemon`);
    expect(readFileSync(path.join(scratch, 'cgroup.procs'), 'utf8')).toBe('');
    expect(d.logs.find((r) => typeof r.daemonCgroup === 'string')).toMatchObject({ daemonCgroup: path.join(scratch, 'daemon') });
  });

  it('starts each command in the children\'s cgroup, already there when the program runs, with oom_score_adj 0', async () => {
    expect(await run(d, { cmd: '/bin/sh', args: ['-c', 'cat /proc/self/oom_score_adj; sh -c "grep ^0:: /proc/self/cgroup"'] })).toEqual({
      out: `0\n0::/${name}/sandbox/user\n`,
      exit: 0,
    });
  });

  it('starts a terminal in the terminals\' cgroup', async () => {
    const { out } = await run(d, { cmd: '/bin/sh', args: ['-c', 'grep ^0:: /proc/self/cgroup'] }, { pty: { size: { cols: 80, rows: 24 } } });
    expect(out.replace(/\r/g, '')).toContain(`0::/${name}/sandbox/ptys\n`);
  });

  it('starts PicoD\'s commands in the children\'s cgroup', async () => {
    const res = await fetch(`${picod.url}/api/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...picod.auth() },
      body: JSON.stringify({ command: ['sh', '-c', 'grep ^0:: /proc/self/cgroup'] }),
    });
    expect(await res.json()).toMatchObject({ stdout: `0::/${name}/sandbox/user\n`, exit_code: 0 });
  });

  it('moves a command run as another user into the children\'s cgroup before it switches user', async () => {
    const basic = 'Basic ' + Buffer.from('nobody:').toString('base64');
    expect(await run(d, { cmd: '/bin/sh', args: ['-c', 'id -u; grep ^0:: /proc/self/cgroup'], cwd: '/' }, {}, { authorization: basic })).toEqual({
      out: `65534\n0::/${name}/sandbox/user\n`,
      exit: 0,
    });
  });

  it('starts the gateway\'s MCP servers in the children\'s cgroup too', async () => {
    const marker = `sbx-cg-${randomBytes(6).toString('hex')}`;
    const api = new GatewayApi(d.gatewayUrl);
    expect((await api.post('/mcps', stdioSpec('ev', marker))).status).toBe(200);
    try {
      const [pid] = processesWith(marker);
      expect(cgroupOf(pid!)).toBe(`/${name}/sandbox/user`);
    } finally {
      await api.delete('/mcps/ev');
    }
  });

  it('keeps answering /health while the children hit their process ceiling', async (ctx) => {
    if (!offered().includes('pids')) {
      console.log(`skipping the process ceiling test: ${MOUNT} offers no pids controller to ${scratch} (offered: ${offered().join(' ') || 'none'})`);
      ctx.skip();
    }
    const ceiling = Number(readFileSync(path.join(scratch, 'sandbox/pids.max'), 'utf8'));
    expect(ceiling).toBeLessThan(400);
    // Bounded: at most 400 sleeps, each gone after 20 s or at the kill below.
    const bomb = run(d, { cmd: '/bin/sh', args: ['-c', 'i=0; while [ $i -lt 400 ]; do sleep 20 & i=$((i+1)); done 2>/dev/null; echo spawned; wait'] });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && Number(readFileSync(path.join(scratch, 'sandbox/pids.current'), 'utf8')) < ceiling) await sleep(25);
    expect(Number(readFileSync(path.join(scratch, 'sandbox/pids.current'), 'utf8'))).toBe(ceiling);
    expect((await fetch(`${d.url}/health`)).status).toBe(204);
    writeFileSync(path.join(scratch, 'sandbox/user/cgroup.kill'), '1');
    await bomb;
  });

  it('keeps answering /health while a child runs out of memory in its own cgroup', async (ctx) => {
    if (!offered().includes('memory')) {
      console.log(`skipping the memory ceiling test: ${MOUNT} offers no memory controller to ${scratch} (offered: ${offered().join(' ') || 'none'})`);
      ctx.skip();
    }
    expect(Number(readFileSync(path.join(scratch, 'sandbox/memory.max'), 'utf8'))).toBe(448 * 1024 * 1024);
    // tail -n 1 keeps a whole line: 600 MiB without a newline is more than the children may have.
    const hog = await run(d, { cmd: '/bin/sh', args: ['-c', 'head -c 629145600 /dev/zero | tail -n 1 >/dev/null; echo $?'] });
    expect(hog.out).toBe('137\n');
    expect((await fetch(`${d.url}/health`)).status).toBe(204);
  });
});

describe('a daemon without a cgroup v2 to manage', () => {
  let d: RunningDaemon;
  beforeAll(async () => {
    // /proc is no cgroup v2 mount: the daemon must say so and leave every process where it is.
    d = await startDaemon({ cgroups: true, args: ['--cgroup-root', '/proc'] });
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('logs once that its children can starve it, and why', () => {
    const warnings = d.logs.filter((r) => typeof r.msg === 'string' && r.msg.startsWith('children share the daemon\'s cgroup'));
    expect(warnings).toEqual([expect.objectContaining({ cgroupRoot: '/proc', reason: expect.stringContaining('/proc is not a cgroup v2 mount') })]);
  });

  it('leaves itself and its children in the cgroup it was started in', async () => {
    expect(cgroupOf(d.child.pid!)).toBe(cgroupOf('self'));
    expect((await run(d, { cmd: '/bin/sh', args: ['-c', 'grep ^0:: /proc/self/cgroup'] })).out).toBe(`0::${cgroupOf('self')}\n`);
  });
});

describe('a daemon started with --no-cgroups', () => {
  it('says cgroups are off and moves nothing', async () => {
    const d = await startDaemon({ args: [] });
    try {
      expect(d.logs.some((r) => r.msg === 'cgroups disabled by --no-cgroups: children share the daemon\'s cgroup')).toBe(true);
      expect(cgroupOf(d.child.pid!)).toBe(cgroupOf('self'));
    } finally {
      await d.stop();
    }
  });
});
