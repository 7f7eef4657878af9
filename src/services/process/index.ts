import type { ServiceImpl } from '@connectrpc/connect';
import type { Process } from '../../gen/process/process_pb.js';
import type { ServiceDeps } from '../context.js';

/** The `process.Process` service; methods not listed answer `unimplemented`. */
export function processService(_deps: ServiceDeps): Partial<ServiceImpl<typeof Process>> {
  return {};
}
