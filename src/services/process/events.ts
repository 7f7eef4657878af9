import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { ProcessEventSchema, type ProcessEvent } from '../../gen/process/process_pb.js';
import type { OutputSubscription } from './output.js';
import type { ExitInfo } from './status.js';

export function startEvent(pid: number): ProcessEvent {
  return create(ProcessEventSchema, { event: { case: 'start', value: { pid } } });
}

export function endEvent(end: ExitInfo): ProcessEvent {
  return create(ProcessEventSchema, { event: { case: 'end', value: end } });
}

const KEEPALIVE = create(ProcessEventSchema, { event: { case: 'keepalive', value: {} } });

function aborted(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason ?? new ConnectError('the stream was canceled', Code.Canceled));
}

/**
 * A process's events for one stream: start, then output as it is taken from the subscription,
 * keepalives after `keepalive` ms without data, and the end. Stops (and detaches) when the client
 * goes away or the handler's deadline passes; the process itself keeps running.
 */
export async function* processEvents(
  pid: number,
  output: OutputSubscription<ExitInfo>,
  signal: AbortSignal,
  keepalive: number,
): AsyncGenerator<ProcessEvent> {
  // Leaving detaches at once, whatever the generator awaits: a generator parked in `yield` behind a
  // write that never completes (an h2 stream reset mid-write) would otherwise keep its subscription,
  // and as primary subscriber its full queue would pause the process's output forever.
  const leave = () => output.close();
  signal.addEventListener('abort', leave, { once: true });
  try {
    yield startEvent(pid);
    let lastSent = Date.now();
    for (;;) {
      if (signal.aborted) throw aborted(signal);
      const next = output.take();
      if (next?.type === 'data') {
        const { kind, data } = next.chunk;
        yield create(ProcessEventSchema, { event: { case: 'data', value: { output: { case: kind, value: data } } } });
        lastSent = Date.now();
      } else if (next?.type === 'end') {
        yield endEvent(next.value);
        return;
      } else if (next?.type === 'error') {
        throw new ConnectError(next.error.message, Code.Aborted);
      } else {
        const quiet = Date.now() - lastSent;
        if (quiet >= keepalive) {
          yield KEEPALIVE;
          lastSent = Date.now();
        } else {
          await output.wait(keepalive - quiet, signal);
        }
      }
    }
  } finally {
    signal.removeEventListener('abort', leave);
    output.close();
  }
}
