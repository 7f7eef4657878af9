#!/usr/bin/env node
// The daemon's first stage: the flags, then every face's port bound and the envd face's plain /health
// answered (src/early.ts) before the rest of the daemon (src/run.ts) is loaded. Nothing binds for --help,
// --version or a usage error.
import { parseConfig, USAGE, UsageError } from './config.js';
import { ioTurns, listenEarly } from './early.js';

/** The package version, written in by packaging/bundle.mjs (both bundles). */
declare const __SANDBOXD_VERSION__: string;

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`sandboxd: ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    throw err;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`sandboxd ${__SANDBOXD_VERSION__} (Node ${process.version})\n`);
    return;
  }
  const faces = await listenEarly(parsed.config);
  // A probe that connected while the ports were bound is answered before the second stage's compile
  // holds the event loop. In the single executable that stage is a script of its own with its own code
  // cache (packaging/sea-main.cjs); in dist/ a chunk.
  await ioTurns();
  const { runDaemon } = await import('./run.js');
  await ioTurns();
  await runDaemon(parsed.config, faces);
}

// A daemon that cannot start (its second stage failed to load or to start) exits rather than go on
// answering /health from its first stage: a probe must never report a daemon that cannot serve.
main().catch((err: unknown) => {
  process.stderr.write(`sandboxd: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
