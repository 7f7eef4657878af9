import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Process } from '../../src/gen/process/process_pb.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { ensureTestUserWithGroup } from '../helpers/users.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log('skipping the native spawn suite: starting commands as `user` needs a root daemon');


/** A directory anyone may enter, a plain file in it (not executable) and a directory only root may enter. */
function makeScratch(): { dir: string; file: string; locked: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-native-'));
  chmodSync(dir, 0o755);
  const file = path.join(dir, 'plain.txt');
  writeFileSync(file, 'x', { mode: 0o644 });
  const locked = path.join(dir, 'locked');
  mkdirSync(locked, { mode: 0o700 });
  return { dir, file, locked };
}

const AS_USER = { authorization: `Basic ${Buffer.from('user:').toString('base64')}` };

async function run(client: Client<typeof Process>, cmd: string, args: string[]): Promise<{ stdout: string; exitCode: number | undefined }> {
  let stdout = '';
  let exitCode: number | undefined;
  for await (const r of client.start({ process: { cmd, args }, stdin: false }, { headers: AS_USER })) {
    const e = r.event?.event;
    if (e?.case === 'data' && e.value.output.case === 'stdout') stdout += Buffer.from(e.value.output.value).toString();
    if (e?.case === 'end') exitCode = e.value.exitCode;
  }
  return { stdout, exitCode };
}

/** What a command as `user` sees: where its stdout goes, its groups, its oom_score_adj and nice. */
const PROBE = 'readlink /proc/self/fd/1; id -un; id -Gn; cat /proc/self/oom_score_adj; cut -d" " -f19 /proc/self/stat';

for (const mode of ['native', 'fallback'] as const) {
  describe.skipIf(!isRoot)(`commands started ${mode === 'native' ? 'by the native spawn' : 'through Node\'s child_process (SANDBOXD_NATIVE_SPAWN=0)'}`, () => {
    let d: RunningDaemon;
    let client: Client<typeof Process>;
    let scratch: ReturnType<typeof makeScratch>;
    beforeAll(async () => {
      ensureTestUserWithGroup();
      scratch = makeScratch();
      d = await startDaemon({ env: mode === 'fallback' ? { SANDBOXD_NATIVE_SPAWN: '0' } : {} });
      client = createClient(Process, createConnectTransport({ baseUrl: d.url, httpVersion: '1.1' }));
    });
    afterAll(async () => {
      await d?.stop();
      if (scratch) rmSync(scratch.dir, { recursive: true, force: true });
    });

    it('run as the user with its supplementary groups, the default oom_score_adj and nice, output through the expected kind of pipe', async () => {
      const r = await run(client, '/bin/sh', ['-c', PROBE]);
      const [stdout, name, groups, oom, nice] = r.stdout.trim().split('\n');
      // The native spawn hands out pipes (as envd's Go does); libuv's child_process hands out socketpairs.
      expect(stdout).toMatch(mode === 'native' ? /^pipe:/ : /^socket:/);
      expect(name).toBe('user');
      expect(groups!.split(' ')).toContain('sbxtestgrp');
      expect(groups!.split(' ')).not.toContain('root');
      expect(oom).toBe('0');
      expect(nice).toBe('0');
      expect(r.exitCode).toBe(0);
      if (mode === 'fallback') expect(d.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('SANDBOXD_NATIVE_SPAWN=0'))).toBe(true);
    });

    it('rejects a cwd or a program the user cannot use with the same invalid_argument message either way', async () => {
      const startWith = async (proc: { cmd: string; cwd?: string }): Promise<ConnectError | undefined> => {
        try {
          for await (const r of client.start({ process: { ...proc, args: [] }, stdin: false }, { headers: AS_USER })) void r;
          return undefined;
        } catch (e) {
          return ConnectError.from(e);
        }
      };
      const cases: [{ cmd: string; cwd?: string }, string][] = [
        [{ cmd: '/bin/true', cwd: '/sbx/no/such/dir' }, "cwd '/sbx/no/such/dir' does not exist"],
        [{ cmd: '/bin/true', cwd: scratch.file }, `cwd '${scratch.file}' is not a directory`],
        [{ cmd: '/bin/true', cwd: scratch.locked }, `cwd '${scratch.locked}': permission denied for user 'user'`],
        [{ cmd: '/sbx/no/such/program' }, "error starting process '/sbx/no/such/program': /sbx/no/such/program: no such file or directory"],
        [{ cmd: scratch.dir }, `error starting process '${scratch.dir}': ${scratch.dir}: is a directory`],
        [{ cmd: scratch.file }, `error starting process '${scratch.file}': ${scratch.file}: permission denied`],
      ];
      for (const [proc, message] of cases) {
        const err = await startWith(proc);
        expect(err?.code, JSON.stringify(proc)).toBe(Code.InvalidArgument);
        expect(err?.rawMessage).toBe(message);
      }
    });

    it('reports an exit code and a missing program as before', async () => {
      expect((await run(client, '/bin/sh', ['-c', 'exit 7'])).exitCode).toBe(7);
      const err = await run(client, '/sbx-no-such-program', []).catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).toContain('/sbx-no-such-program');
    });
  });
}
