import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  CloseStdinResponseSchema,
  SendInputResponseSchema,
  StreamInputResponseSchema,
  type CloseStdinRequest,
  type CloseStdinResponse,
  type ProcessInput,
  type SendInputRequest,
  type SendInputResponse,
  type StreamInputRequest,
  type StreamInputResponse,
} from '../../gen/process/process_pb.js';
import type { ManagedProcess } from './process.js';
import type { ProcessRegistry } from './registry.js';

/** Writes one input chunk; resolves once the child's pipe or pty took it (backpressure for the client). */
async function deliver(proc: ManagedProcess, input: ProcessInput | undefined): Promise<void> {
  const inp = input?.input;
  switch (inp?.case) {
    case 'stdin':
      return proc.writeStdin(inp.value);
    case 'pty':
      return proc.writePty(inp.value);
    default:
      throw new ConnectError('input must be stdin or pty data', Code.InvalidArgument);
  }
}

/** SendInput: one chunk to stdin or the pty. */
export async function sendInput(registry: ProcessRegistry, req: SendInputRequest): Promise<SendInputResponse> {
  await deliver(registry.get(req.process), req.input);
  return create(SendInputResponseSchema);
}

/** StreamInput: a start event naming the process, then data chunks written in the order sent. */
export async function streamInput(registry: ProcessRegistry, requests: AsyncIterable<StreamInputRequest>): Promise<StreamInputResponse> {
  let proc: ManagedProcess | undefined;
  for await (const req of requests) {
    const ev = req.event;
    switch (ev.case) {
      case 'start':
        proc = registry.get(ev.value.process);
        break;
      case 'data':
        if (!proc) throw new ConnectError('input stream sent data before a start event naming the process', Code.InvalidArgument);
        await deliver(proc, ev.value.input);
        break;
      case 'keepalive':
        break;
      default:
        throw new ConnectError('input stream event must be start, data or keepalive', Code.InvalidArgument);
    }
  }
  return create(StreamInputResponseSchema);
}

/** CloseStdin: EOF on a pipe process's stdin; failed_precondition on a pty. */
export function closeStdin(registry: ProcessRegistry, req: CloseStdinRequest): CloseStdinResponse {
  registry.get(req.process).closeStdin();
  return create(CloseStdinResponseSchema);
}
