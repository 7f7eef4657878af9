// First: protobuf-es picks its base64 codec when it loads (see the module).
import './services/process/base64.js';
import type { Config } from './config.js';
import { startDaemon } from './daemon.js';
import type { EarlyFaces } from './early.js';
import { createLogger } from './log.js';

/**
 * The daemon's second stage: src/main.ts loads it once the faces' ports listen (src/early.ts). It takes
 * over those servers and runs until SIGTERM or SIGINT.
 */
export async function runDaemon(config: Config, faces: EarlyFaces): Promise<void> {
  const logger = createLogger(config.logLevel);
  // Every process in the sandbox hangs on this daemon: a fault that escaped every handler is logged
  // and the daemon goes on serving rather than exit.
  process.on('uncaughtException', (err) => logger.fatal({ err }, 'uncaught exception; still serving'));
  process.on('unhandledRejection', (err) => logger.fatal({ err }, 'unhandled rejection; still serving'));
  const daemon = await startDaemon(config, logger, faces);
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
