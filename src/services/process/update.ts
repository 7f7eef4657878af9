import { create } from '@bufbuild/protobuf';
import { UpdateResponseSchema, type UpdateRequest, type UpdateResponse } from '../../gen/process/process_pb.js';
import type { ProcessRegistry } from './registry.js';

/** Update: resizes a pty process; failed_precondition for a process without a pty. */
export function update(registry: ProcessRegistry, req: UpdateRequest): UpdateResponse {
  const proc = registry.get(req.process);
  if (req.pty) proc.resize(req.pty.size?.cols ?? 0, req.pty.size?.rows ?? 0);
  return create(UpdateResponseSchema);
}
