import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sandbox } from 'e2b';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startSdkDaemon } from '../helpers/sdk.js';

/** A shell loop that makes a chain of `levels` directories named `name` with relative mkdir (no long path is ever passed). */
function deepTree(root: string, levels: number, name: string): string {
  return `mkdir -p ${root} && cd ${root} && i=0; while [ $i -lt ${levels} ]; do mkdir ${name} && echo x > ${name}.txt && ln -s .. up && cd ${name} || exit 1; i=$((i+1)); done; echo leaf > leaf.txt; pwd | wc -c`;
}

describe('a tree deeper than PATH_MAX', () => {
  let d: RunningDaemon;
  let sandbox: Sandbox;
  let base: string;
  beforeAll(async () => {
    ({ daemon: d, sandbox } = await startSdkDaemon());
    base = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-deep-'));
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('is removed whole by files.remove, as envd removes it', async () => {
    const root = path.join(base, 'remove-me');
    const made = await sandbox.commands.run(deepTree(root, 120, 'd'.repeat(60)));
    expect(Number(made.stdout.trim()), 'path length of the deepest directory').toBeGreaterThan(4096);
    await sandbox.files.remove(root);
    expect(existsSync(root)).toBe(false);
    expect(existsSync(base)).toBe(true);
  });

  it('is removed when it hangs below a directory the request names', async () => {
    const root = path.join(base, 'outer');
    await sandbox.commands.run(deepTree(path.join(root, 'inner'), 100, 'e'.repeat(50)));
    await sandbox.files.remove(root);
    expect(existsSync(root)).toBe(false);
  });

  it('is listed deep without hanging, and the daemon keeps serving', async () => {
    const root = path.join(base, 'list-me');
    await sandbox.commands.run(deepTree(root, 90, 'f'.repeat(60)));
    // Entries whose paths are past PATH_MAX cannot be stat'ed by path: envd fails such a walk with an
    // error too. What matters is an answer, not a hang, and that the shallow part still lists.
    const shallow = await sandbox.files.list(root, { depth: 3 });
    expect(shallow.some((e) => e.name === 'f'.repeat(60) + '.txt')).toBe(true);
    const deep = await sandbox.files.list(root, { depth: 200 }).then(
      (entries) => ({ entries }),
      (err: unknown) => ({ err }),
    );
    if ('entries' in deep) expect(deep.entries.length).toBeGreaterThan(90);
    else expect(String(deep.err)).toMatch(/too long/i);
    expect((await fetch(`${d.url}/health`)).status).toBe(204);
    await sandbox.files.remove(root);
    expect(existsSync(root)).toBe(false);
  });
});
