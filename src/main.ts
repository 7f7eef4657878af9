#!/usr/bin/env node
// First: protobuf-es picks its base64 codec when it loads (see the module).
import './services/process/base64.js';
import { parseConfig, USAGE, UsageError } from './config.js';
import { startDaemon } from './daemon.js';
import { createLogger } from './log.js';

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
  const logger = createLogger(parsed.config.logLevel);
  // Every process in the sandbox hangs on this daemon: a fault that escaped every handler is logged
  // and the daemon goes on serving rather than exit.
  process.on('uncaughtException', (err) => logger.fatal({ err }, 'uncaught exception; still serving'));
  process.on('unhandledRejection', (err) => logger.fatal({ err }, 'unhandled rejection; still serving'));
  const daemon = await startDaemon(parsed.config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    daemon.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`sandboxd: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
