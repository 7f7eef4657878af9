import { create } from '@bufbuild/protobuf';
import { ListResponseSchema, type ListResponse } from '../../gen/process/process_pb.js';
import type { ProcessRegistry } from './registry.js';

/** List: the running processes with the config they were started with, pid and tag. */
export function list(registry: ProcessRegistry): ListResponse {
  return create(ListResponseSchema, {
    processes: registry.list().map((p) => ({ pid: p.pid, tag: p.meta.tag, config: p.meta.config })),
  });
}
