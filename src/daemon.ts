import { getRequestListener } from '@hono/node-server';
import { isLoopbackOnly, type Config } from './config.js';
import { createGateway } from './gateway/app.js';
import { DualProtocolServer } from './listen.js';
import { createLogger, type Logger } from './log.js';
import { startPortForwarding } from './portforward/index.js';
import { createEnvdHandler } from './server.js';
import type { ServiceDeps } from './services/context.js';
import { closeProcesses } from './services/process/index.js';
import { DaemonState } from './state.js';
import { UserDb } from './system/users.js';

export interface Daemon {
  deps: ServiceDeps;
  envdPort: number;
  gatewayPort: number | undefined;
  close(): Promise<void>;
}

/** Starts both faces; resolves once they listen. */
export async function startDaemon(config: Config, logger: Logger = createLogger(config.logLevel)): Promise<Daemon> {
  const deps: ServiceDeps = { config, state: new DaemonState(config), users: new UserDb(), logger };
  const closers: (() => Promise<void>)[] = [];

  const envd = new DualProtocolServer(createEnvdHandler(deps), logger);
  const envdBound = await envd.listen(config.port, config.hosts);
  closers.push(() => envd.close());
  for (const f of envdBound.failed) logger.warn({ host: f.host, error: f.error }, 'could not bind host; continuing without it');
  logger.info({ port: envdBound.port, hosts: envdBound.bound }, 'envd face listening');

  let gatewayPort: number | undefined;
  if (config.gatewayPort !== 0) {
    const gw = createGateway(deps);
    const gateway = new DualProtocolServer(getRequestListener(gw.app.fetch), logger);
    const bound = await gateway.listen(config.gatewayPort, config.hosts);
    gatewayPort = bound.port;
    // Stop taking requests, then stop every registered MCP server (no orphans after SIGTERM).
    closers.push(() => gateway.close().then(() => gw.close()));
    logger.info({ port: bound.port, hosts: bound.bound }, 'gateway face listening');
  }

  if (!isLoopbackOnly(config.hosts) && config.accessToken === undefined) {
    logger.warn(
      { hosts: config.hosts },
      'LISTENING BEYOND LOOPBACK WITHOUT AN ACCESS TOKEN: anyone who can reach this port can run commands. ' +
        'Pass --access-token (or SANDBOXD_ACCESS_TOKEN), or have the orchestrator call POST /init with one.',
    );
  }

  const stopPortForwarding = startPortForwarding(config, logger, gatewayPort === undefined ? [envdBound.port] : [envdBound.port, gatewayPort]);
  if (stopPortForwarding) closers.push(stopPortForwarding);

  return {
    deps,
    envdPort: envdBound.port,
    gatewayPort,
    async close() {
      await closeProcesses(deps);
      await Promise.all(closers.map((c) => c()));
    },
  };
}
