import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/daemon.js';

interface Figure {
  figure: string;
  value: string;
  error?: string;
}

// Keeps the benchmark harness from rotting: tiny sizes, and only that every figure was produced.
describe('benchmark harness (smoke sizes)', () => {
  it('produces every figure of the table', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
    const bundle = path.join(ROOT, 'bench/tmp/run-smoke.mjs');
    await build({
      entryPoints: [path.join(ROOT, 'bench/run.ts')],
      outfile: bundle,
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      logLevel: 'warning',
    });
    const out = path.join(dir, 'results.md');
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [bundle], { env: { ...process.env, BENCH_SMOKE: '1', BENCH_OUT: out, BENCH_EXECUTABLE: '0' }, stdio: ['ignore', 'ignore', 'inherit'] });
      child.on('exit', resolve);
    });
    expect(code).toBe(0);
    const figures = JSON.parse(readFileSync(out.replace(/\.md$/, '.json'), 'utf8')) as Figure[];
    const expected = ['/health', 'commands.run(', 'download', 'upload', 'stdout', 'files.list', 'gateway `echo`', 'concurrent', 'RSS'];
    expect(figures).toHaveLength(expected.length);
    expected.forEach((word, i) => expect(figures[i]!.figure).toContain(word));
    for (const f of figures) {
      expect(f.error, f.figure).toBeUndefined();
      expect(f.value, f.figure).not.toBe('failed');
    }
    const peers = JSON.parse(readFileSync(out.replace(/\.md$/, '.peers.json'), 'utf8')) as (Figure & { peer: string; ours?: number })[];
    const peerWords = ['commands.run(', 'GET /files', 'files.read', 'octet-stream', 'multipart', 'onStdout', 'raw Connect', 'files.list', 'concurrent `commands.run`, wall', 'concurrent `commands.run`, wall', '4 KiB', 'PTY', 'new small files', 'replacing', 'small files (64 in flight)', '`commands.run`: peak RSS', '`commands.run`: RSS of the daemon', 'getInfo` (Stat, 64 in flight): peak RSS', 'getInfo` (Stat, 64 in flight): RSS of the daemon', '4 KiB file: peak RSS', '4 KiB file: RSS of the daemon', '`watchDir` event latency', 'floor: the same `watchDir`', '`watchDir` event latency, warm', 'floor: the same warm `watchDir`', 'register', 'round trip', 'floor: the same `echo`', 'HTTP hop', 'adds to that floor', '50 concurrent', 'RSS of the gateway process and', 'RSS of the gateway process alone', 'anonymous', 'upstream (server-everything) alone'];
    expect(peers).toHaveLength(peerWords.length);
    peerWords.forEach((word, i) => expect(peers[i]!.figure).toContain(word));
    for (const f of peers) {
      expect(f.error, f.figure).toBeUndefined();
      expect(f.ours, f.figure).toBeGreaterThan(0);
    }
    const table = readFileSync(out, 'utf8');
    expect(table.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| figure')).length).toBe(figures.length + peers.length);
  }, 240_000);
});
