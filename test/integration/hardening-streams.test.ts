import { existsSync, mkdtempSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Process } from '../../src/gen/process/process_pb.js';
import type { Sandbox } from 'e2b';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startSdkDaemon } from '../helpers/sdk.js';

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function envelope(json: object): Buffer {
  const body = Buffer.from(JSON.stringify(json));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

describe('a Start stream over h2c whose client leaves', () => {
  let d: RunningDaemon;
  let dir: string;
  beforeAll(async () => {
    d = await startDaemon();
    dir = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-h2leave-'));
  });
  afterAll(async () => {
    await d?.stop();
  });

  const processes = () => createClient(Process, createConnectTransport({ baseUrl: d.url, httpVersion: '1.1' }));

  for (const how of ['resets the stream', 'destroys the session'] as const) {
    it(`a command whose output outran the client runs to completion when the client ${how}`, async () => {
      const done = path.join(dir, `done-${how.replace(/ /g, '-')}`);
      const session = http2.connect(d.url);
      const stream = session.request({
        ':method': 'POST',
        ':path': '/process.Process/Start',
        'content-type': 'application/connect+json',
        'connect-protocol-version': '1',
      });
      // 300 MB of output: far past every buffer between the child and a client that stops reading.
      stream.end(envelope({ process: { cmd: '/bin/sh', args: ['-c', `head -c 300000000 /dev/zero; touch ${done}`] } }));
      let received = 0;
      await new Promise<void>((resolve, reject) => {
        stream.on('data', (c: Buffer) => {
          received += c.length;
          if (received >= 1_000_000) {
            stream.pause();
            resolve();
          }
        });
        stream.on('error', reject);
      });
      const listed = await processes().list({});
      const pid = listed.processes.find((p) => p.config?.args.some((a) => a.includes(done)))?.pid;
      expect(pid, 'the command is listed while it runs').toBeDefined();

      if (how === 'resets the stream') stream.close(http2.constants.NGHTTP2_CANCEL);
      else session.destroy();

      await until(() => existsSync(done), `${done} to appear`);
      await until(async () => !(await processes().list({})).processes.some((p) => p.pid === pid), 'the command to leave List');
      session.destroy();
    });
  }
});

describe('a command whose background child still holds its output', () => {
  let d: RunningDaemon;
  let sandbox: Sandbox;
  beforeAll(async () => {
    ({ daemon: d, sandbox } = await startSdkDaemon());
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('returns what the background child writes after the shell exits (the SDK sees both lines)', async () => {
    const result = await sandbox.commands.run('(sleep 2; echo late) & echo early');
    expect(result.stdout).toBe('early\nlate\n');
    expect(result.exitCode).toBe(0);
  });

  it('keeps stderr of a background child as well', async () => {
    const result = await sandbox.commands.run('(sleep 1; echo late >&2) & echo early');
    expect(result.stdout).toBe('early\n');
    expect(result.stderr).toBe('late\n');
  });
});
