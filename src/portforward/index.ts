import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { PortForwarder } from './forwarder.js';

export { PortForwarder, externalAddresses } from './forwarder.js';
export { loopbackListeners, parseProcNetTcp, readTcpTables } from './proc-net-tcp.js';
export { RelaySources, relaySources } from './relays.js';

/**
 * Starts forwarding loopback-only listeners to the external addresses when the config asks for it
 * (see `--port-forward`); `ownPorts` are the daemon's bound ports, never forwarded. Returns the closer.
 */
export function startPortForwarding(config: Config, logger: Logger, ownPorts: readonly number[]): (() => Promise<void>) | undefined {
  if (!config.portForward) return undefined;
  const forwarder = new PortForwarder({ logger: logger.child({ component: 'portforward' }), excludePorts: ownPorts });
  forwarder.start();
  logger.info({ excluded: ownPorts }, 'port forwarding on: loopback-only listeners are forwarded to the external addresses');
  return () => forwarder.close();
}
