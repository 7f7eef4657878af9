import type { DescMessage, DescMethod, DescService } from '@bufbuild/protobuf';
import type { Interceptor, ServiceImpl } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { Filesystem } from '../gen/filesystem/filesystem_pb.js';
import {
  CreateWatcherResponseSchema,
  GetWatcherEventsResponseSchema,
  ListDirResponseSchema,
  MakeDirResponseSchema,
  MoveResponseSchema,
  RemoveResponseSchema,
  StatResponseSchema,
  WatchDirResponseSchema,
} from '../gen/legacy/filesystem_pb.js';
import type { NodeHandler } from '../listen.js';
import { STRICT_TEXT_DECODER } from '../api/json-body.js';

/**
 * Answers for the Python SDK up to e2b 1.5.x, as envd gives them (its internal/services/legacy).
 * Those releases parse Connect JSON strictly, so every field envd added later (an entry's size,
 * owner, …) breaks them. They say `User-Agent: connect-python`, exactly (1.6 and later say
 * `e2b-python-sdk/…`); to them the Filesystem service answers in the frozen shapes of
 * proto/legacy/filesystem.proto: EntryInfo as {name, type, path}, FilesystemEvent as {name, type},
 * in JSON and binary, unary and streamed alike, with `X-E2B-Legacy-SDK: true` on every answer that
 * is not an error. The Process service answers them unchanged, as envd's does.
 */

export const LEGACY_USER_AGENT = 'connect-python';
export const LEGACY_HEADER = 'X-E2B-Legacy-SDK';

const FILESYSTEM_PREFIX = `/${Filesystem.typeName}/`;

/** The legacy shape of each Filesystem answer (the rest have nothing to cut). */
const LEGACY_OUTPUT: Record<string, DescMessage> = {
  stat: StatResponseSchema,
  makeDir: MakeDirResponseSchema,
  move: MoveResponseSchema,
  listDir: ListDirResponseSchema,
  remove: RemoveResponseSchema,
  watchDir: WatchDirResponseSchema,
  createWatcher: CreateWatcherResponseSchema,
  getWatcherEvents: GetWatcherEventsResponseSchema,
};

/**
 * The Filesystem service with legacy answer types. Connect serializes what a method returns with
 * the method's output schema, after building a message of that schema from it, which keeps only
 * the legacy fields (nested entries and events too). A file type the legacy enum lacks (symlink)
 * goes out as its number, as Go's protojson writes it.
 */
function legacyFilesystem(): DescService {
  const methods: DescMethod[] = Filesystem.methods.map((m) => ({ ...m, output: LEGACY_OUTPUT[m.localName] ?? m.output }) as DescMethod);
  return { ...Filesystem, methods, method: Object.fromEntries(methods.map((m) => [m.localName, m])) };
}

const markLegacy: Interceptor = (next) => async (req) => {
  const res = await next(req);
  res.header.set(LEGACY_HEADER, 'true');
  return res;
};

/** True for the requests envd converts: Filesystem calls from a `connect-python` agent. */
export function wantsLegacyAnswer(headers: Record<string, string | string[] | undefined>, pathname: string): boolean {
  // Node keeps the first of repeated User-Agent headers, as Go's Header.Get does.
  return headers['user-agent'] === LEGACY_USER_AGENT && pathname.startsWith(FILESYSTEM_PREFIX);
}

/**
 * A Connect handler serving the Filesystem implementation `impl` (the same instance the regular
 * handler serves, so poll watchers are shared) in legacy shapes.
 */
export function legacyFilesystemHandler(impl: Partial<ServiceImpl<typeof Filesystem>>): NodeHandler {
  return connectNodeAdapter({
    routes: (router) => router.service(legacyFilesystem(), impl as Partial<ServiceImpl<DescService>>),
    // The same strict decoder as the regular handler: a BOM or bytes that are not UTF-8 are invalid_argument.
    jsonOptions: { ignoreUnknownFields: true, textDecoder: STRICT_TEXT_DECODER } as { ignoreUnknownFields: boolean },
    interceptors: [markLegacy],
  }) as NodeHandler;
}
