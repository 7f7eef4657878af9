import type { KeyObject } from 'node:crypto';
import { Hono, type MiddlewareHandler } from 'hono';
import { honoHandler, type Face, type FaceEnv } from '../face.js';
import type { ServiceDeps } from '../services/context.js';
import { registryFor } from '../services/process/registry.js';
import { MAX_BODY_BYTES, tooLarge } from './body.js';
import { formatGoDuration } from './duration.js';
import { picodJson, PicodError } from './errors.js';
import { executeRoutes, killGroup } from './execute.js';
import { filesRoutes } from './files.js';
import { loadRouterKey, TokenError, verifyRouterToken } from './jwt.js';
import { Workspace } from './workspace.js';

/** What PicoD's /health calls itself; AgentCube's tooling only reads `status`. */
const SERVICE = 'PicoD';
const API_VERSION = '0.0.1';

/** Daemon variables commands must not inherit: the envd and gateway secrets. */
const PRIVATE_ENV = new Set(['SANDBOXD_ACCESS_TOKEN', 'SANDBOXD_GATEWAY_TOKEN']);
/** Set per user by the process service; the daemon's own values would be wrong for another user. */
const PER_USER_ENV = new Set(['HOME', 'USER', 'LOGNAME', 'SHELL']);

/** PicoD lets commands inherit its environment (the pod's env from the CodeInterpreter template). */
function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !PRIVATE_ENV.has(k) && !PER_USER_ENV.has(k)) env[k] = v;
  }
  return env;
}

/** PicoD's auth middleware: `Authorization: Bearer <router JWT>`, verified against the router's key. */
function requireRouterToken(key: KeyObject): MiddlewareHandler<FaceEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization');
    if (!header) throw new PicodError(401, 'Missing Authorization header', 'Request requires JWT authentication');
    const parts = header.split(' ');
    if (parts.length !== 2 || parts[0] !== 'Bearer') throw new PicodError(401, 'Invalid Authorization header format', 'Use Bearer <token>');
    try {
      verifyRouterToken(parts[1]!, key);
    } catch (err) {
      if (err instanceof TokenError) throw new PicodError(401, 'Invalid token', `JWT verification failed: ${err.message}`);
      throw err;
    }
    await next();
  };
}

/** Checked before anything else, as PicoD's global middleware: a declared length past the cap is refused at once. */
const declaredBodyLimit: MiddlewareHandler<FaceEnv> = async (c, next) => {
  const length = Number(c.req.header('content-length') ?? 0);
  if (length > MAX_BODY_BYTES) throw tooLarge();
  await next();
};

export interface PicodOptions {
  /** PEM of the router's public key (PICOD_AUTH_PUBLIC_KEY). */
  publicKey: string | undefined;
  /** The workspace root; undefined: the daemon's working directory. */
  workspace: string | undefined;
}

/**
 * PicoD's REST API (AgentCube's in-sandbox daemon) over the daemon's own process and file services.
 * Throws (and the face does not start) when the key is missing or unusable, as PicoD refuses to start.
 */
export function createPicodApp(deps: ServiceDeps, opts: PicodOptions): { app: Hono<FaceEnv>; workspace: Workspace; groups: Set<number> } {
  const key = loadRouterKey(opts.publicKey);
  const workspace = new Workspace(opts.workspace ?? process.cwd());
  const logger = deps.logger.child({ face: 'picod' });
  const user = () => deps.users.lookup(deps.state.defaultUser);
  const started = process.hrtime.bigint();
  const groups = new Set<number>();

  const app = new Hono<FaceEnv>();
  app.use('*', declaredBodyLimit);
  app.get('/health', (c) =>
    c.json({ status: 'ok', service: SERVICE, version: API_VERSION, uptime: formatGoDuration(process.hrtime.bigint() - started) }),
  );
  // Only PicoD's routes ask for a token; any other path is a plain 404, as gin answers unmatched paths.
  const auth = requireRouterToken(key);
  for (const p of ['/api/execute', '/api/files', '/api/files/*']) app.use(p, auth);
  app.route('/', executeRoutes({ workspace, registry: registryFor(deps), user, baseEnv: inheritedEnv(), logger, groups }));
  app.route('/', filesRoutes({ workspace, user, logger }));
  app.notFound((c) => c.text('404 page not found', 404));
  app.onError((err, c) => {
    if (err instanceof PicodError) return picodJson(c, err);
    logger.error({ err, path: c.req.path }, 'picod request failed');
    return picodJson(c, new PicodError(500, 'internal error'));
  });
  return { app, workspace, groups };
}

/** The PicoD face on `port`; throws when it cannot start (no key, bad key, unusable workspace). */
export function picodFace(deps: ServiceDeps, port: number): Face {
  const { app, workspace, groups } = createPicodApp(deps, { publicKey: deps.config.picodPublicKey, workspace: deps.config.workspace });
  deps.logger.info({ workspace: workspace.root }, 'picod workspace ready');
  return {
    name: 'picod',
    port,
    handler: honoHandler(app),
    // The daemon has ended the commands themselves by now; whatever they started in their groups goes too.
    close: async () => {
      for (const pgid of groups) killGroup(pgid);
    },
  };
}
