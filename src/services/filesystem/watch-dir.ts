import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import {
  EventType,
  EventTypeSchema,
  FilesystemEventSchema,
  WatchDirResponse_KeepAliveSchema,
  WatchDirResponse_StartEventSchema,
  WatchDirResponseSchema,
  type FilesystemEvent,
  type WatchDirRequest,
  type WatchDirResponse,
} from '../../gen/filesystem/filesystem_pb.js';
import type { RpcCall } from '../context.js';
import type { FilesystemContext } from './context.js';
import { EventBuffer } from './event-buffer.js';
import { wrapped } from './errors.js';
import { DirectStreamWriter } from '../direct-stream.js';
import { keepaliveIntervalMs } from '../keepalive.js';
import { checkWatchable } from './watch-target.js';
import { DirectoryWatcher, type WatchEvent } from './watcher.js';

/** Events a stream may lag behind its client before it is ended as too slow. */
export const STREAM_EVENT_CAPACITY = 10_000;

export function toFilesystemEvent(e: WatchEvent): FilesystemEvent {
  return create(FilesystemEventSchema, { name: e.name, type: e.type, entry: e.entry });
}

const KEEPALIVE_JSON = '{"keepalive":{}}';
const EVENT_TYPE_NAMES = new Map(EventTypeSchema.values.map((v) => [v.number, v.name]));

/**
 * A plain event's WatchDirResponse in protobuf JSON, as protobuf-es writes it, without building the
 * message (its reflection was a tenth of the event's time in the daemon); undefined for an event with
 * an entry or with a field at its default (omitted in JSON), which protobuf-es writes instead.
 */
export function watchEventJson(e: WatchEvent): string | undefined {
  const type = EVENT_TYPE_NAMES.get(e.type);
  if (e.entry || e.name === '' || e.type === EventType.UNSPECIFIED || type === undefined) return undefined;
  return `{"filesystem":{"name":${JSON.stringify(e.name)},"type":"${type}"}}`;
}

/** Starts a watcher for a request, after envd's checks (not_found, invalid_argument). */
export async function startWatcher(
  fs: FilesystemContext,
  req: { path: string; recursive: boolean; includeEntry: boolean; allowNetworkMounts: boolean },
  ctx: RpcCall,
  sink: { onEvent: (e: WatchEvent) => void; onError: (err: Error) => void },
): Promise<{ path: string; watcher: DirectoryWatcher }> {
  const { path } = fs.resolve(req.path, ctx);
  await checkWatchable(path, req.allowNetworkMounts);
  try {
    const watcher = await DirectoryWatcher.start(path, {
      recursive: req.recursive,
      includeEntry: req.includeEntry,
      users: fs.deps.users,
      logger: fs.deps.logger,
      ...sink,
    });
    return { path, watcher };
  } catch (err) {
    throw wrapped(Code.Internal, `error adding path ${path} to watcher`, err);
  }
}

/**
 * `WatchDir`: a start event once the watch is in place, then filesystem events, with a keepalive
 * after each quiet `Keepalive-Ping-Interval`. The watch is released when the stream ends for any
 * reason (client gone, deadline, error).
 */
export async function* watchDir(fs: FilesystemContext, req: WatchDirRequest, ctx: HandlerContext): AsyncGenerator<WatchDirResponse> {
  const events = new EventBuffer<WatchEvent>(STREAM_EVENT_CAPACITY);
  const { path, watcher } = await startWatcher(fs, req, ctx, {
    onEvent: (e) => events.push(e),
    onError: (err) => events.fail(err),
  });
  const log = fs.deps.logger.child({ watch: path, recursive: req.recursive });
  log.debug({ directories: watcher.watchedDirectories, native: watcher.nativeReader }, 'watch started');
  try {
    yield create(WatchDirResponseSchema, { event: { case: 'start', value: create(WatchDirResponse_StartEventSchema) } });
    const idleMs = keepaliveIntervalMs(ctx.requestHeader);
    // Connect has written the start event by now; the rest can go straight to the response.
    const direct = DirectStreamWriter.after(ctx, WatchDirResponseSchema);
    for (;;) {
      if (events.dropped > 0) {
        throw new ConnectError(`watch of ${path} fell behind: ${events.dropped} events dropped`, Code.ResourceExhausted);
      }
      let next;
      try {
        next = await events.next(idleMs, ctx.signal);
      } catch (err) {
        throw wrapped(Code.Internal, 'watcher error', err);
      }
      if (next === 'aborted') return;
      const build = (): WatchDirResponse =>
        next === 'idle'
          ? create(WatchDirResponseSchema, { event: { case: 'keepalive', value: create(WatchDirResponse_KeepAliveSchema) } })
          : create(WatchDirResponseSchema, { event: { case: 'filesystem', value: toFilesystemEvent(next) } });
      if (direct) await direct.write(build, next === 'idle' ? KEEPALIVE_JSON : watchEventJson(next));
      else yield build();
    }
  } finally {
    watcher.close();
    log.debug('watch ended');
  }
}
