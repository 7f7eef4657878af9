import { create } from '@bufbuild/protobuf';
import type { HandlerContext } from '@connectrpc/connect';
import { ConnectResponseSchema, type ConnectRequest, type ConnectResponse } from '../../gen/process/process_pb.js';
import { keepaliveIntervalMs } from '../keepalive.js';
import { endEvent, processEvents, startEvent } from './events.js';
import { ManagedProcess } from './process.js';
import type { ProcessRegistry } from './registry.js';

/**
 * Connect: follows a running process from now on (start, live output, end). A process that ended
 * less than EXIT_RETENTION_MS ago answers with its start and end events.
 */
export async function* connect(registry: ProcessRegistry, req: ConnectRequest, ctx: HandlerContext): AsyncGenerator<ConnectResponse> {
  const target = registry.attach(req.process);
  if (!(target instanceof ManagedProcess)) {
    yield create(ConnectResponseSchema, { event: startEvent(target.pid) });
    yield create(ConnectResponseSchema, { event: endEvent(target.end) });
    return;
  }
  const output = target.output.subscribe();
  const keepalive = keepaliveIntervalMs(ctx.requestHeader);
  for await (const event of processEvents(target.pid, output, ctx.signal, keepalive)) {
    yield create(ConnectResponseSchema, { event });
  }
}
