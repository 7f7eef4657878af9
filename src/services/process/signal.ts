import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { Signal, SendSignalResponseSchema, type SendSignalRequest, type SendSignalResponse } from '../../gen/process/process_pb.js';
import type { ProcessRegistry } from './registry.js';

/** How long SendSignal(SIGKILL) waits for the end, so a killed process is gone from List on return. */
const KILL_SETTLE_MS = 2000;

/** SendSignal: SIGTERM or SIGKILL to a running process; not_found for an unknown or ended one. */
export async function sendSignal(registry: ProcessRegistry, req: SendSignalRequest): Promise<SendSignalResponse> {
  const proc = registry.get(req.process);
  let name: NodeJS.Signals;
  switch (req.signal) {
    case Signal.SIGKILL:
      name = 'SIGKILL';
      break;
    case Signal.SIGTERM:
      name = 'SIGTERM';
      break;
    default:
      throw new ConnectError(`invalid signal: ${Signal[req.signal] ?? req.signal}`, Code.Unimplemented);
  }
  try {
    proc.signal(name);
  } catch (err) {
    throw new ConnectError(`error sending signal: ${(err as Error).message}`, Code.Internal);
  }
  if (name === 'SIGKILL') {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([proc.ended, new Promise((resolve) => (timer = setTimeout(resolve, KILL_SETTLE_MS)))]);
    clearTimeout(timer);
  }
  return create(SendSignalResponseSchema);
}
