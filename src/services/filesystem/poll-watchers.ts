import { randomBytes } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  CreateWatcherResponseSchema,
  GetWatcherEventsResponseSchema,
  RemoveWatcherResponseSchema,
  type CreateWatcherRequest,
  type CreateWatcherResponse,
  type GetWatcherEventsRequest,
  type GetWatcherEventsResponse,
  type RemoveWatcherRequest,
  type RemoveWatcherResponse,
} from '../../gen/filesystem/filesystem_pb.js';
import type { RpcCall } from '../context.js';
import type { FilesystemContext } from './context.js';
import { EventBuffer } from './event-buffer.js';
import { wrapped } from './errors.js';
import type { DirectoryWatcher, WatchEvent } from './watcher.js';
import { startWatcher, toFilesystemEvent } from './watch-dir.js';

/** Events a poll watcher keeps between two polls; beyond that the oldest are dropped. */
export const POLL_EVENT_CAPACITY = 10_000;

interface PollWatcher {
  watcher: DirectoryWatcher;
  events: EventBuffer<WatchEvent>;
  path: string;
}

/**
 * The poll API (`CreateWatcher`, `GetWatcherEvents`, `RemoveWatcher`): watchers that outlive the
 * request that made them and buffer events until collected. They live until removed, as in envd.
 */
export class PollWatchers {
  private readonly watchers = new Map<string, PollWatcher>();

  constructor(private readonly fs: FilesystemContext) {}

  get size(): number {
    return this.watchers.size;
  }

  async create(req: CreateWatcherRequest, ctx: RpcCall): Promise<CreateWatcherResponse> {
    const events = new EventBuffer<WatchEvent>(POLL_EVENT_CAPACITY);
    const { path, watcher } = await startWatcher(this.fs, req, ctx, {
      onEvent: (e) => events.push(e),
      onError: (err) => events.fail(err),
    });
    const id = 'w' + randomBytes(12).toString('hex');
    this.watchers.set(id, { watcher, events, path });
    this.fs.deps.logger.debug({ watcher: id, watch: path }, 'poll watcher created');
    return create(CreateWatcherResponseSchema, { watcherId: id });
  }

  events(req: GetWatcherEventsRequest): GetWatcherEventsResponse {
    const w = this.get(req.watcherId);
    if (w.events.error) throw wrapped(Code.Internal, 'watcher error', w.events.error);
    if (w.events.dropped > 0) {
      this.fs.deps.logger.warn({ watcher: req.watcherId, dropped: w.events.dropped }, 'poll watcher dropped events: not polled often enough');
      w.events.dropped = 0;
    }
    return create(GetWatcherEventsResponseSchema, { events: w.events.drain().map(toFilesystemEvent) });
  }

  remove(req: RemoveWatcherRequest): RemoveWatcherResponse {
    const w = this.get(req.watcherId);
    w.watcher.close();
    this.watchers.delete(req.watcherId);
    return create(RemoveWatcherResponseSchema, {});
  }

  private get(id: string): PollWatcher {
    const w = this.watchers.get(id);
    if (!w) throw new ConnectError(`watcher with id ${id} not found`, Code.NotFound);
    return w;
  }
}
