import type http from 'node:http';
import type http2 from 'node:http2';
import { createContextValues } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { getRequestListener } from '@hono/node-server';
import { createApiApp } from './api/app.js';
import { STRICT_TEXT_DECODER } from './api/json-body.js';
import { basicAuthUsername } from './auth/user.js';
import { Filesystem } from './gen/filesystem/filesystem_pb.js';
import { Process } from './gen/process/process_pb.js';
import type { NodeHandler } from './listen.js';
import { ACCEPT_COMPRESSION } from './services/compression.js';
import { nodeResponseKey } from './services/direct-stream.js';
import type { ServiceDeps } from './services/context.js';
import { filesystemService } from './services/filesystem/index.js';
import { legacyFilesystemHandler, wantsLegacyAnswer } from './services/legacy.js';
import { processService, processStartStream } from './services/process/index.js';
import { unaryHandler } from './services/unary.js';
import { sendJson } from './server.js';

type Res = http.ServerResponse | http2.Http2ServerResponse;

/**
 * The envd face past CORS and the access token: the user check, then Connect (Filesystem, Process, and
 * the legacy Filesystem answers) or the HTTP API. src/server.ts loads this module on the first request that
 * is not a plain `/health`, so a daemon that has not been asked anything yet has not loaded protobuf-es,
 * Connect, the generated services or the API's routes.
 */
export function envdRoutes(deps: ServiceDeps): NodeHandler {
  const api = createApiApp(deps);
  const apiListener = getRequestListener(api.fetch, {
    errorHandler: (err) => {
      deps.logger.error({ err }, 'http api failure');
      return new Response('internal error', { status: 500 });
    },
  });
  // Connect's JSON codec also takes a TextDecoder (the adapter's type omits it): a fatal one makes a
  // body that is not UTF-8, or starts with a BOM, invalid_argument, as envd's protojson answers.
  const jsonOptions = { ignoreUnknownFields: true, textDecoder: STRICT_TEXT_DECODER };
  const filesystem = filesystemService(deps);
  const legacyRpc = legacyFilesystemHandler(filesystem);
  const processes = processService(deps);
  const startStream = processStartStream(deps, jsonOptions);
  // The unary methods as the SDKs call them, past connect-node's pipeline (unary.ts); the rest is connect-node's.
  const unary = unaryHandler(
    [
      [Filesystem, filesystem],
      [Process, processes],
    ],
    jsonOptions,
  );
  // The response of each RPC, for the streams that write their messages to it directly (direct-stream.ts).
  const responses = new WeakMap<object, Res>();
  const rpc = connectNodeAdapter({
    contextValues: (req) => createContextValues().set(nodeResponseKey, responses.get(req)),
    routes: (router) => {
      router.service(Filesystem, filesystem);
      router.service(Process, processes);
    },
    jsonOptions,
    acceptCompression: ACCEPT_COMPRESSION,
    fallback: (req, res) => void apiListener(req, res as unknown as Res),
  });

  return (req, res) => {
    const username = basicAuthUsername(req.headers.authorization);
    if (username !== undefined && !deps.users.exists(username)) {
      sendJson(res, 401, { code: 'unauthenticated', message: `invalid username: '${username}'` });
      return;
    }
    const pathname = (req.url ?? '/').split('?', 1)[0] ?? '/';
    if (wantsLegacyAnswer(req.headers, pathname)) legacyRpc(req, res);
    else if ('stream' in req || !(startStream(req, res as http.ServerResponse) || unary(req, res as http.ServerResponse))) {
      responses.set(req, res as Res);
      rpc(req, res);
    }
  };
}
