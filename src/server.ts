import type http from 'node:http';
import type http2 from 'node:http2';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { getRequestListener } from '@hono/node-server';
import { createApiApp } from './api/app.js';
import { STRICT_TEXT_DECODER } from './api/json-body.js';
import { safeEqual } from './auth/token.js';
import { basicAuthUsername } from './auth/user.js';
import { Filesystem } from './gen/filesystem/filesystem_pb.js';
import { Process } from './gen/process/process_pb.js';
import type { NodeHandler } from './listen.js';
import { ACCEPT_COMPRESSION } from './services/compression.js';
import type { ServiceDeps } from './services/context.js';
import { filesystemService } from './services/filesystem/index.js';
import { legacyFilesystemHandler, wantsLegacyAnswer } from './services/legacy.js';
import { processService } from './services/process/index.js';

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** Routes open without X-Access-Token, as envd (`/files` then checks its own signature). */
const TOKEN_EXEMPT = new Set(['GET /health', 'POST /init', 'GET /files', 'POST /files']);

const EXPOSED_HEADERS = 'Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Location, Cache-Control, X-Content-Type-Options';
const ALLOWED_METHODS = 'HEAD, GET, POST, PUT, PATCH, DELETE';

function sendJson(res: Res, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** CORS as envd (rs/cors): any origin, Connect/gRPC headers exposed; preflights answered here. */
function applyCors(req: Req, res: Res): boolean {
  const origin = req.headers.origin;
  if (!origin) return false;
  res.setHeader('Vary', 'Origin');
  if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
    res.setHeader('Vary', 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers');
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Methods', ALLOWED_METHODS);
    const requested = req.headers['access-control-request-headers'];
    if (requested) res.setHeader('Access-Control-Allow-Headers', requested);
    res.setHeader('Access-Control-Max-Age', '7200');
    res.writeHead(204);
    res.end();
    return true;
  }
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
  return false;
}

/** The envd face's single request handler: CORS, token, user check, then Connect or the HTTP API. */
export function createEnvdHandler(deps: ServiceDeps): NodeHandler {
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
  const rpc = connectNodeAdapter({
    routes: (router) => {
      router.service(Filesystem, filesystem);
      router.service(Process, processService(deps));
    },
    jsonOptions,
    acceptCompression: ACCEPT_COMPRESSION,
    fallback: (req, res) => void apiListener(req, res as unknown as Res),
  });

  return (req, res) => {
    if (applyCors(req, res)) return;
    const { state, users } = deps;
    const pathname = (req.url ?? '/').split('?', 1)[0] ?? '/';
    if (state.accessToken !== undefined && !TOKEN_EXEMPT.has(`${req.method} ${pathname}`)) {
      const given = req.headers['x-access-token'];
      if (!safeEqual(Array.isArray(given) ? given[0] : given, state.accessToken)) {
        sendJson(res, 401, {
          code: 401,
          message: 'unauthorized access, please provide a valid access token or method signing if supported',
        });
        return;
      }
    }
    const username = basicAuthUsername(req.headers.authorization);
    if (username !== undefined && !users.exists(username)) {
      sendJson(res, 401, { code: 'unauthenticated', message: `invalid username: '${username}'` });
      return;
    }
    if (wantsLegacyAnswer(req.headers, pathname)) legacyRpc(req, res);
    else rpc(req, res);
  };
}
