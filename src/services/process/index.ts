import type { ServiceImpl } from '@connectrpc/connect';
import type { Process } from '../../gen/process/process_pb.js';
import type { ServiceDeps } from '../context.js';
import { connect } from './connect.js';
import { closeStdin, sendInput, streamInput } from './input.js';
import { list } from './list.js';
import { registryFor } from './registry.js';
import { sendSignal } from './signal.js';
import { start } from './start.js';
import { startStreamHandler } from './start-stream.js';
import { update } from './update.js';

export { closeProcesses } from './registry.js';

type JsonOptions = Parameters<typeof startStreamHandler>[1];

/** The `process.Process` service: commands and PTYs, over one registry per daemon. */
export function processService(deps: ServiceDeps): ServiceImpl<typeof Process> {
  const registry = registryFor(deps);
  return {
    start: (req, ctx) => start(registry, deps, req, ctx),
    connect: (req, ctx) => connect(registry, req, ctx),
    list: () => list(registry),
    sendInput: (req) => sendInput(registry, req),
    streamInput: (reqs) => streamInput(registry, reqs),
    sendSignal: (req) => sendSignal(registry, req),
    closeStdin: (req) => closeStdin(registry, req),
    update: (req) => update(registry, req),
  };
}

/**
 * Start as the e2b SDKs call it (HTTP/1.1, Connect streaming, no compression), served beside
 * connect-node on the same registry; the handler returns false for every request it leaves to it.
 */
export function processStartStream(deps: ServiceDeps, jsonOptions: JsonOptions): ReturnType<typeof startStreamHandler> {
  const registry = registryFor(deps);
  return startStreamHandler((req, call) => start(registry, deps, req, call), jsonOptions);
}
