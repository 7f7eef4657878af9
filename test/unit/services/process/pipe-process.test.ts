import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { ProcessConfigSchema } from '../../../../src/gen/process/process_pb.js';
import { PipeProcess } from '../../../../src/services/process/pipe-process.js';

function sh(script: string, postExitLimitMs?: number): Promise<PipeProcess> {
  return PipeProcess.spawn({
    plan: { file: '/bin/sh', args: ['-c', script] },
    cwd: '/',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    stdin: false,
    meta: { config: create(ProcessConfigSchema, { cmd: '/bin/sh', args: ['-c', script] }), tag: undefined },
    postExitLimitMs,
  });
}

/** Everything the process wrote to stdout, once it ended. */
async function stdoutOf(proc: PipeProcess): Promise<string> {
  const sub = proc.output.subscribe();
  let out = '';
  for (;;) {
    const next = sub.take();
    if (next?.type === 'data') out += next.chunk.data.toString();
    else if (next?.type === 'end') return out;
    else if (next?.type === 'error') throw next.error;
    else await sub.wait(10_000);
  }
}

describe('a pipe process whose background child keeps its output open', () => {
  it('ends after the last byte the background child writes', async () => {
    const proc = await sh('(sleep 0.5; echo late) & echo early');
    expect(await stdoutOf(proc)).toBe('early\nlate\n');
  });

  it('ends at the post-exit bound when a daemonised child never closes its output', async () => {
    const proc = await sh('sleep 5 & echo early', 300);
    expect(await stdoutOf(proc)).toBe('early\n');
    expect((await proc.ended).exitCode).toBe(0);
  });

  it('ends once its deadline expires while a background child still holds the output', async () => {
    const proc = await sh('sleep 5 & echo early');
    const out = stdoutOf(proc);
    await new Promise<void>((resolve) => {
      const poll = () => (proc.hasExited ? resolve() : setTimeout(poll, 10));
      poll();
    });
    proc.expire();
    expect(await out).toBe('early\n');
  });
});
