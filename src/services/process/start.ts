import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import { StartResponseSchema, type StartRequest, type StartResponse } from '../../gen/process/process_pb.js';
import { requestUser } from '../../auth/user.js';
import type { ServiceDeps } from '../context.js';
import { keepaliveIntervalMs } from '../keepalive.js';
import { processEvents } from './events.js';
import type { ProcessRegistry } from './registry.js';

/**
 * What Start uses of its call: connect-node's HandlerContext has it, and so has the lean stream that
 * serves the SDKs' requests (start-stream.ts).
 */
export interface StartCall extends Pick<HandlerContext, 'signal' | 'timeoutMs'> {
  requestHeader: Pick<Headers, 'get'>;
}

/**
 * Start: spawns the process and streams start, output and end. `Connect-Timeout-Ms` bounds the
 * process's life (it is killed at the deadline); leaving the stream early leaves it running.
 */
export async function* start(
  registry: ProcessRegistry,
  deps: ServiceDeps,
  req: StartRequest,
  ctx: StartCall,
): AsyncGenerator<StartResponse> {
  const user = requestUser(ctx.requestHeader.get('authorization'), deps.state, deps.users);
  if (!req.process) throw new ConnectError('process config is required', Code.InvalidArgument);
  const { process: proc, output } = await registry.start({
    user,
    config: req.process,
    tag: req.tag,
    pty: req.pty ? { cols: req.pty.size?.cols ?? 0, rows: req.pty.size?.rows ?? 0 } : undefined,
    // Unset keeps stdin open, as envd does for clients older than the `stdin` field.
    stdin: req.stdin ?? true,
    timeoutMs: ctx.timeoutMs(),
  });
  const keepalive = keepaliveIntervalMs(ctx.requestHeader);
  for await (const event of processEvents(proc.pid, output, ctx.signal, keepalive)) {
    yield create(StartResponseSchema, { event });
  }
}
