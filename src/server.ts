import type http from 'node:http';
import type http2 from 'node:http2';
import { safeEqual } from './auth/token.js';
import { answerPlainHealth, isPlainHealth } from './health.js';
import { lazyHandler } from './lazy.js';
import type { NodeHandler } from './listen.js';
import type { ServiceDeps } from './services/context.js';

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** Routes open without X-Access-Token, as envd (`/files` then checks its own signature). */
const TOKEN_EXEMPT = new Set(['GET /health', 'POST /init', 'GET /files', 'POST /files']);

const EXPOSED_HEADERS = 'Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Location, Cache-Control, X-Content-Type-Options';
const ALLOWED_METHODS = 'HEAD, GET, POST, PUT, PATCH, DELETE';

export function sendJson(res: Res, status: number, body: unknown): void {
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

/**
 * The envd face's single request handler: CORS and the access token here, then the rest of the face
 * (src/envd-routes.ts: user check, Connect, the HTTP API), which loads on the first request that needs it.
 * A `/health` without credentials is answered here, as the API's route does (src/api/health.ts), so a
 * daemon only probed for liveness has not loaded protobuf-es, Connect, Hono (whose Node adapter loads
 * Node's fetch, undici) or the services: README, "In an image", says what each costs.
 */
export function createEnvdHandler(deps: ServiceDeps): NodeHandler {
  const routes = lazyHandler('envd routes', deps.logger, () => import('./envd-routes.js').then((m) => m.envdRoutes(deps)));

  return (req, res) => {
    if (applyCors(req, res)) return;
    const { state } = deps;
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
    if (isPlainHealth(req)) {
      answerPlainHealth(res);
      return;
    }
    routes(req, res);
  };
}
