import { isLoopbackOnly, type Config } from './config.js';
import type { EarlyFaces } from './early.js';
import type { Face } from './face.js';
import type { Gateway } from './gateway/app.js';
import { lazyHandler } from './lazy.js';
import type { Logger } from './log.js';
import { createEnvdHandler } from './server.js';
import type { ServiceDeps } from './services/context.js';
import { DaemonState } from './state.js';
import { startIdleTrim } from './system/memory-trim.js';
import { protectDaemon } from './system/survival.js';
import { UserDb } from './system/users.js';

export interface Daemon {
  deps: ServiceDeps;
  envdPort: number;
  gatewayPort: number | undefined;
  picodPort: number | undefined;
  close(): Promise<void>;
}

/**
 * The faces the configuration asks for, envd first. PicoD's code loads only when its face is on, and the
 * envd face loads its RPC stack on first use (src/server.ts).
 */
async function facesFor(deps: ServiceDeps): Promise<Face[]> {
  const { config } = deps;
  const faces: Face[] = [{ name: 'envd', port: config.port, handler: createEnvdHandler(deps) }];
  if (config.gatewayPort !== 0) {
    // Its code (Hono, and the MCP SDK behind it) loads with the first request to the gateway.
    let gateway: Gateway | undefined;
    const handler = lazyHandler('gateway', deps.logger, async () => {
      // The envd face's modules are evaluated first, as when everything loaded at start: Hono's listener
      // replaces the global Request/Response, and the envd routes evaluated after that reset the Python
      // SDK's ListDir connection (the compat suite's first test, after its /health poll on this port).
      await import('./envd-routes.js');
      const [app, face] = await Promise.all([import('./gateway/app.js'), import('./face.js')]);
      gateway = app.createGateway(deps);
      return face.honoHandler(gateway.app);
    });
    // Once the port stops taking requests, every registered MCP server stops (no orphans after SIGTERM).
    faces.push({ name: 'gateway', port: config.gatewayPort, handler, close: async () => gateway?.close() });
  }
  if (config.picodPort !== 0) {
    try {
      const { picodFace } = await import('./picod/app.js');
      faces.push(picodFace(deps, config.picodPort));
    } catch (err) {
      // As PicoD refuses to start without a usable key; the other faces serve on.
      deps.logger.error({ port: config.picodPort, error: (err as Error).message }, `picod face not started: ${(err as Error).message}`);
    }
  }
  return faces;
}

/**
 * Takes over the faces' servers, which the first stage bound (src/early.ts), and starts what the daemon runs
 * beside them. The daemon protects itself (oom_score_adj, cgroups) before any face gets its handler, so before
 * any request could spawn a child.
 */
export async function startDaemon(config: Config, logger: Logger, early: EarlyFaces): Promise<Daemon> {
  protectDaemon(logger, { root: config.cgroupRoot, enabled: config.cgroups });
  const deps: ServiceDeps = { config, state: new DaemonState(config), users: new UserDb(), logger };
  const closers: (() => Promise<void>)[] = [];
  const ports = new Map<string, number>();

  const faces = await facesFor(deps);
  for (const [name, server] of early) {
    const face = faces.find((f) => f.name === name);
    if (!face) {
      // Its face did not start (PicoD without a usable key): the port is given back.
      await server.close();
      continue;
    }
    server.serve(face.handler, logger);
    closers.push(() => server.close().then(() => face.close?.()));
    const bound = server.bound;
    for (const f of bound.failed) logger.warn({ face: face.name, host: f.host, error: f.error }, 'could not bind host; continuing without it');
    ports.set(face.name, bound.port);
    logger.info({ port: bound.port, hosts: bound.bound }, `${face.name} face listening`);
  }

  if (!isLoopbackOnly(config.hosts) && config.accessToken === undefined) {
    logger.warn(
      { hosts: config.hosts },
      'LISTENING BEYOND LOOPBACK WITHOUT AN ACCESS TOKEN: anyone who can reach this port can run commands. ' +
        'Pass --access-token (or SANDBOXD_ACCESS_TOKEN), or have the orchestrator call POST /init with one.',
    );
  }

  if (config.portForward) {
    // Loaded only when on (it is off on loopback-only hosts): /proc/net/tcp parsing and node:fs/promises.
    const { startPortForwarding } = await import('./portforward/index.js');
    const stopPortForwarding = startPortForwarding(config, logger, [...ports.values()]);
    if (stopPortForwarding) closers.push(stopPortForwarding);
  }
  const stopTrim = startIdleTrim(logger);
  closers.push(async () => stopTrim());

  return {
    deps,
    envdPort: ports.get('envd')!,
    gatewayPort: ports.get('gateway'),
    picodPort: ports.get('picod'),
    async close() {
      // The registry is loaded with the first command (the process service or PicoD): loaded here,
      // unused, it finds nothing to stop.
      const { closeProcesses } = await import('./services/process/registry.js');
      await closeProcesses(deps);
      await Promise.all(closers.map((c) => c()));
    },
  };
}
