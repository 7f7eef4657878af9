import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Process, type ProcessEvent } from '../../src/gen/process/process_pb.js';
import { startDaemon, type DaemonOptions, type RunningDaemon } from '../helpers/daemon.js';
import { GatewayApi, processesWith, stdioSpec } from './gateway-support.js';

const CAP_SYS_RESOURCE = 24;
const isRoot = process.getuid?.() === 0;
const capEff = BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'));
const canLower = isRoot && (capEff & (1n << BigInt(CAP_SYS_RESOURCE))) !== 0n;
if (!canLower) console.log('skipping "runs with oom_score_adj -1000": lowering oom_score_adj needs root with CAP_SYS_RESOURCE, which this run lacks');

function oomScoreAdj(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim());
}

async function run(d: RunningDaemon, script: string): Promise<string> {
  const client = createClient(Process, createConnectTransport({ baseUrl: d.url, httpVersion: '1.1' }));
  let out = '';
  for await (const r of client.start({ process: { cmd: '/bin/sh', args: ['-c', script] } })) {
    const e: ProcessEvent['event'] | undefined = r.event?.event;
    if (e?.case === 'data' && e.value.output.case === 'stdout') out += Buffer.from(e.value.output.value).toString();
  }
  return out;
}

function survivalSuite(name: string, opts: DaemonOptions, expected: (d: RunningDaemon) => void) {
  describe(name, () => {
    let d: RunningDaemon;
    beforeAll(async () => {
      d = await startDaemon({ gatewayPort: 'free', ...opts });
    });
    afterAll(async () => {
      await d?.stop();
    });

    it('keeps its own oom_score_adj', () => expected(d));

    it('gives every child, and what the child forks, the default 0 back', async () => {
      expect(await run(d, 'cat /proc/self/oom_score_adj')).toBe('0\n');
      expect(await run(d, 'sh -c "cat /proc/self/oom_score_adj"')).toBe('0\n');
    });

    it('gives the gateway\'s MCP servers the default back too', async () => {
      const marker = `sbx-oom-${randomUUID()}`;
      const api = new GatewayApi(d.gatewayUrl);
      expect((await api.post('/mcps', stdioSpec('ev', marker))).status).toBe(200);
      try {
        const [pid] = processesWith(marker);
        expect(oomScoreAdj(pid!)).toBe(0);
      } finally {
        await api.delete('/mcps/ev');
      }
    });

    it('runs the program in place of the prelude, with the pid the daemon reports', async () => {
      const client = createClient(Process, createConnectTransport({ baseUrl: d.url, httpVersion: '1.1' }));
      let pid = 0;
      let out = '';
      for await (const r of client.start({ process: { cmd: '/bin/sh', args: ['-c', 'echo $$'] } })) {
        const e = r.event?.event;
        if (e?.case === 'start') pid = e.value.pid;
        if (e?.case === 'data' && e.value.output.case === 'stdout') out += Buffer.from(e.value.output.value).toString();
      }
      expect(Number(out.trim())).toBe(pid);
    });
  });
}

describe.skipIf(!canLower)('a daemon that may lower its oom_score_adj', () => {
  survivalSuite('runs with oom_score_adj -1000', {}, (d) => {
    expect(oomScoreAdj(d.child.pid!)).toBe(-1000);
    expect(d.logs.some((r) => r.msg === 'daemon protected from the OOM killer')).toBe(true);
  });
});

// A service manager's OOMScoreAdjust stands in here as a wrapper that raises the daemon's value
// (raising needs no privilege): the children must still get the default back.
survivalSuite(
  'a daemon started with an oom_score_adj of its own',
  { wrap: ['/bin/sh', '-c', 'echo 300 > /proc/self/oom_score_adj && exec "$0" "$@"'] },
  (d) => {
    expect(oomScoreAdj(d.child.pid!)).toBe(canLower ? -1000 : 300);
  },
);
