import { readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunning, startPicodDaemon, type PicodDaemon } from './picod-support.js';

interface ExecuteAnswer {
  stdout: string;
  stderr: string;
  exit_code: number;
  duration: number;
  start_time: string;
  end_time: string;
}

describe('PicoD face: /api/execute', () => {
  let p: PicodDaemon;
  beforeAll(async () => {
    p = await startPicodDaemon({ env: { PICOD_TEST_POD_VAR: 'from-the-pod' } });
  });
  afterAll(async () => {
    await p?.daemon.stop();
  });

  const post = (body: unknown, raw?: string) =>
    fetch(`${p.url}/api/execute`, { method: 'POST', headers: { 'content-type': 'application/json', ...p.auth() }, body: raw ?? JSON.stringify(body) });
  const run = async (body: unknown): Promise<ExecuteAnswer> => {
    const res = await post(body);
    expect(res.status).toBe(200);
    return (await res.json()) as ExecuteAnswer;
  };
  const refusal = async (body: unknown, raw?: string) => {
    const res = await post(body, raw);
    return { status: res.status, body: (await res.json()) as { error: string; code: number } };
  };

  it('answers stdout, stderr, exit code, duration and times', async () => {
    const r = await run({ command: ['sh', '-c', 'echo out; echo err >&2; exit 3'] });
    expect(r).toMatchObject({ stdout: 'out\n', stderr: 'err\n', exit_code: 3 });
    expect(r.duration).toBeGreaterThan(0);
    expect(Date.parse(r.end_time)).toBeGreaterThanOrEqual(Date.parse(r.start_time));
  });

  it('runs argv without a shell', async () => {
    const r = await run({ command: ['echo', '$HOME', '*', '; ls'] });
    expect(r.stdout).toBe('$HOME * ; ls\n');
  });

  it('runs in the workspace by default', async () => {
    const r = await run({ command: ['pwd'] });
    expect(r.stdout.trim()).toBe(realpathSync(p.workspace));
  });

  it('merges the request env over the daemon environment', async () => {
    const r = await run({ command: ['sh', '-c', 'echo "$TEST_VAR|$PICOD_TEST_POD_VAR|$SANDBOXD_ACCESS_TOKEN|$HOME"'], env: { TEST_VAR: 'picod_env' } });
    expect(r.stdout).toBe('picod_env|from-the-pod||/root\n');
    const override = await run({ command: ['sh', '-c', 'echo $PICOD_TEST_POD_VAR'], env: { PICOD_TEST_POD_VAR: 'mine' } });
    expect(override.stdout).toBe('mine\n');
  });

  it('creates a missing working_dir inside the workspace; absolute ones are taken relative to it', async () => {
    const r = await run({ command: ['pwd'], working_dir: 'deep/er/dir' });
    expect(r.stdout.trim()).toBe(path.join(realpathSync(p.workspace), 'deep/er/dir'));
    const abs = await run({ command: ['pwd'], working_dir: '/abs/dir' });
    expect(abs.stdout.trim()).toBe(path.join(realpathSync(p.workspace), 'abs/dir'));
    expect(statSync(path.join(p.workspace, 'abs/dir')).isDirectory()).toBe(true);
  });

  it('refuses a working_dir outside the workspace with 400', async () => {
    const r = await refusal({ command: ['ls'], working_dir: '../' });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/^Invalid working directory: access denied: path '..\/' escapes workspace jail/);
    expect(r.body.code).toBe(400);
  });

  it('answers exit code 1 with the reason when the program cannot be started', async () => {
    const r = await run({ command: ['no-such-program-xyz'] });
    expect(r.exit_code).toBe(1);
    expect(r.stderr).toContain('no-such-program-xyz');
  });

  it('refuses bad JSON, a missing or empty command and a bad timeout with 400', async () => {
    expect((await refusal(undefined, '{not json')).status).toBe(400);
    expect((await refusal(undefined, '')).status).toBe(400);
    const missing = await refusal({ timeout: '1s' });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toContain("'Command' failed on the 'required' tag");
    expect(await refusal({ command: [] })).toEqual({ status: 400, body: { error: 'command cannot be empty', code: 400 } });
    expect((await refusal({ command: 'echo hi' })).status).toBe(400);
    expect(await refusal({ command: ['true'], timeout: 'abc' })).toEqual({
      status: 400,
      body: { error: 'Invalid timeout format: time: invalid duration "abc"', code: 400 },
    });
    expect((await refusal({ command: ['true'], timeout: '30' })).body.error).toBe('Invalid timeout format: time: missing unit in duration "30"');
    expect((await refusal({ command: ['true'], timeout: '3x' })).body.error).toBe('Invalid timeout format: time: unknown unit "x" in duration "3x"');
  });

  it('takes Go durations for the timeout', async () => {
    for (const timeout of ['30s', '500ms', '1m', '1h2m3.5s', '1.5s']) {
      expect((await run({ command: ['true'], timeout })).exit_code).toBe(0);
    }
  });

  it('ends a command that runs out of time with exit code 124 and kills its whole process group', async () => {
    const pidFile = path.join(p.workspace, 'background.pid');
    const r = await run({ command: ['sh', '-c', `sleep 300 & echo $! > ${pidFile}; echo started; sleep 300`], timeout: '500ms' });
    expect(r.exit_code).toBe(124);
    expect(r.stdout).toBe('started\n');
    expect(r.stderr).toContain('Command timed out after 0.5 seconds');
    const background = Number(readFileSync(pidFile, 'utf8'));
    // SIGKILL went to the group before the answer; the kernel may take a moment to finish the process.
    for (let i = 0; i < 100 && (await isRunning(background)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await isRunning(background)).toBe(false);
  });

  it('words a whole-second timeout as PicoD does', async () => {
    const r = await run({ command: ['sleep', '30'], timeout: '1s' });
    expect(r.exit_code).toBe(124);
    expect(r.stderr).toBe('Command timed out after 1 seconds');
  });

  it('keeps at most 8 MiB of stdout and says in stderr how much was dropped', async () => {
    const total = 8 * 1024 * 1024 + 4096;
    const r = await run({ command: ['sh', '-c', `head -c ${total} /dev/zero | tr '\\0' 'a'`] });
    expect(r.exit_code).toBe(0);
    expect(r.stdout.length).toBe(8 * 1024 * 1024);
    expect(r.stderr).toBe('[sandboxd: stdout truncated: 4096 bytes after the first 8388608 were dropped]\n');
  });

  it('waits for a background child that keeps stdout open, and the timeout ends it, as PicoD', async () => {
    const r = await run({ command: ['sh', '-c', 'echo parent; (sleep 0.3; echo child) &'], timeout: '30s' });
    expect(r).toMatchObject({ stdout: 'parent\nchild\n', exit_code: 0 });
    const held = await run({ command: ['sh', '-c', 'echo parent; sleep 300 &'], timeout: '500ms' });
    expect(held).toMatchObject({ stdout: 'parent\n', exit_code: 124 });
  });

  it('lets a background child outlive its command, as PicoD does', async () => {
    const r = await run({ command: ['sh', '-c', 'sleep 300 > /dev/null 2>&1 & echo $!'] });
    expect(r.exit_code).toBe(0);
    expect(await isRunning(Number(r.stdout))).toBe(true);
    process.kill(Number(r.stdout), 'SIGKILL');
  });
});

describe('PicoD face: shutdown', () => {
  it('ends what commands left running in their process groups when the daemon stops', async () => {
    const p = await startPicodDaemon();
    const res = await fetch(`${p.url}/api/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...p.auth() },
      body: JSON.stringify({ command: ['sh', '-c', 'sleep 300 > /dev/null 2>&1 & echo $!'] }),
    });
    const pid = Number(((await res.json()) as ExecuteAnswer).stdout);
    expect(await isRunning(pid)).toBe(true);
    expect(await p.daemon.stop()).toBe(0);
    for (let i = 0; i < 100 && (await isRunning(pid)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await isRunning(pid)).toBe(false);
  });
});
