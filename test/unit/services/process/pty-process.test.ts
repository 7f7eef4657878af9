import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { ProcessConfigSchema } from '../../../../src/gen/process/process_pb.js';
import type { FanoutLimits } from '../../../../src/services/process/output.js';
import { PtyProcess } from '../../../../src/services/process/pty-process.js';

function sh(script: string, opts: { postExitLimitMs?: number; limits?: FanoutLimits } = {}): Promise<PtyProcess> {
  return PtyProcess.spawn({
    plan: { file: '/bin/sh', args: ['-c', script] },
    cwd: '/',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    cols: 80,
    rows: 24,
    meta: { config: create(ProcessConfigSchema, { cmd: '/bin/sh', args: ['-c', script] }), tag: undefined },
    ...opts,
  });
}

/** Everything the terminal showed, once the process ended; `slowly` takes each chunk a moment later. */
async function outputOf(proc: PtyProcess, slowly = false): Promise<Buffer> {
  const sub = proc.output.subscribe();
  const chunks: Buffer[] = [];
  for (;;) {
    const next = sub.take();
    if (next?.type === 'data') {
      chunks.push(next.chunk.data);
      if (slowly) await new Promise((resolve) => setTimeout(resolve, 1));
    } else if (next?.type === 'end') return Buffer.concat(chunks);
    else if (next?.type === 'error') throw next.error;
    else await sub.wait(10_000);
  }
}

/** The pid a script printed as `bg=<pid>`. */
function backgroundPid(out: Buffer): number {
  const match = /bg=(\d+)/.exec(out.toString());
  if (!match) throw new Error(`no background pid in ${JSON.stringify(out.toString())}`);
  return Number(match[1]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// A burst of 384 KiB without newlines (the terminal would turn each into two bytes) printed right
// before the exit: the kernel still holds the tail of it when the child is gone.
const BURST = 384 * 1024;
const burst = `head -c ${BURST} /dev/zero | tr '\\0' x`;

describe('a pty process at its exit', () => {
  it('delivers every byte of a burst printed right before the exit before its end, time after time', async () => {
    for (let run = 0; run < 20; run++) {
      const proc = await sh(burst);
      const out = await outputOf(proc);
      expect({ run, bytes: out.length }).toEqual({ run, bytes: BURST });
      expect(out.every((b) => b === 0x78)).toBe(true);
      expect((await proc.ended).exitCode).toBe(0);
    }
  });

  it('delivers the whole burst to a slow reader whose backpressure pauses the terminal', async () => {
    const limits: FanoutLimits = { primaryHighWater: 16 * 1024, primaryLowWater: 4 * 1024, followerLimit: 1024 * 1024 };
    for (let run = 0; run < 5; run++) {
      const proc = await sh(burst, { limits });
      const out = await outputOf(proc, true);
      expect({ run, bytes: out.length }).toEqual({ run, bytes: BURST });
    }
  });

  it('ends after the last byte a background child writes to the terminal', async () => {
    // The background child ignores the hangup the exit of the terminal's session leader sends.
    const proc = await sh("trap '' HUP; (sleep 0.5; echo late) & echo early");
    expect((await outputOf(proc)).toString()).toBe('early\r\nlate\r\n');
    expect((await proc.ended).exitCode).toBe(0);
  });

  it('ends with its exit status when it let go of the terminal before exiting', async () => {
    // Its output ends first (EIO), which closes the master: the hangup that sends it is ignored here.
    const proc = await sh("trap '' HUP; echo bye; exec </dev/null >/dev/null 2>&1; sleep 0.3; exit 3");
    expect((await outputOf(proc)).toString()).toBe('bye\r\n');
    expect((await proc.ended).exitCode).toBe(3);
  });

  it('ends at the post-exit bound while a background child still holds the terminal', async () => {
    const proc = await sh("trap '' HUP; sleep 30 & echo \"bg=$!\"", { postExitLimitMs: 300 });
    const out = await outputOf(proc);
    const bg = backgroundPid(out);
    try {
      expect((await proc.ended).exitCode).toBe(0);
      expect(alive(bg)).toBe(true);
    } finally {
      process.kill(bg, 'SIGKILL');
    }
  });

  it('ends once its deadline expires while a background child still holds the terminal', async () => {
    const proc = await sh("trap '' HUP; sleep 30 & echo \"bg=$!\"");
    const out = outputOf(proc);
    await new Promise<void>((resolve) => {
      const poll = () => (proc.hasExited ? resolve() : setTimeout(poll, 10));
      poll();
    });
    proc.expire();
    const bg = backgroundPid(await out);
    process.kill(bg, 'SIGKILL');
  });
});
