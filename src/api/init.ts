import { spawn } from 'node:child_process';
import { Hono } from 'hono';
import { safeEqual } from '../auth/token.js';
import type { ServiceDeps } from '../services/context.js';
import { CaCertInstaller } from '../system/ca-certs.js';
import { withSurvivalPrelude } from '../system/survival.js';
import { ENVD_COMPAT_VERSION } from '../state.js';
import type { FaceEnv } from '../face.js';
import { parseJsonBody, rfc3339Problem } from './json-body.js';

export interface InitBody {
  envVars?: Record<string, string>;
  accessToken?: string;
  defaultUser?: string;
  defaultWorkdir?: string;
  timestamp?: string;
  /** PEM certificates for the system trust store (src/system/ca-certs.ts). */
  caBundle?: string;
  /** E2B infrastructure only (NFS volumes of a sandbox lifecycle): accepted and ignored. */
  volumeMounts?: unknown[];
  lifecycleID?: string;
}

/** Validates the `/init` JSON; returns the reason it is malformed, or the typed body. */
export function parseInitBody(raw: unknown): InitBody | string {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'body must be a JSON object';
  const b = raw as Record<string, unknown>;
  if (b.envVars !== undefined) {
    if (b.envVars === null || typeof b.envVars !== 'object' || Array.isArray(b.envVars)) return 'envVars must be an object of strings';
    for (const [k, v] of Object.entries(b.envVars)) if (typeof v !== 'string') return `envVars.${k} must be a string`;
  }
  for (const key of ['accessToken', 'defaultUser', 'defaultWorkdir', 'timestamp', 'hyperloopIP'] as const) {
    if (b[key] !== undefined && b[key] !== null && typeof b[key] !== 'string') return `${key} must be a string`;
  }
  for (const key of ['caBundle', 'lifecycleID'] as const) {
    if (b[key] !== undefined && b[key] !== null && typeof b[key] !== 'string') return `${key} must be a string`;
  }
  if (b.volumeMounts !== undefined && b.volumeMounts !== null && !Array.isArray(b.volumeMounts)) return 'volumeMounts must be an array';
  if (b.accessToken === '') return 'empty token not allowed';
  if (typeof b.timestamp === 'string') {
    const problem = rfc3339Problem(b.timestamp);
    if (problem) return problem;
  }
  return b as InitBody;
}

/** Nanoseconds since the epoch of an RFC 3339 timestamp, keeping sub-millisecond digits. */
export function timestampNs(ts: string): bigint {
  const ms = BigInt(Date.parse(ts));
  const frac = /\.(\d+)/.exec(ts)?.[1] ?? '';
  const subMs = BigInt((frac.slice(3, 9) || '0').padEnd(6, '0'));
  return ms * 1_000_000n + subMs;
}

/** Sets the system clock from the orchestrator's time when far off; only root can, and failure is only logged. */
function syncClock(deps: ServiceDeps, ts: string): void {
  const target = Date.parse(ts);
  const now = Date.now();
  if (!(now < target - 50 || now > target + 5000)) return;
  if (process.getuid?.() !== 0) return;
  const plan = withSurvivalPrelude({ file: 'date', args: ['-u', '-s', `@${(target / 1000).toFixed(3)}`] });
  const child = spawn(plan.file, plan.args, { stdio: 'ignore' });
  child.on('error', (err) => deps.logger.warn({ err }, 'could not set the clock'));
  child.on('exit', (code) => {
    if (code !== 0) deps.logger.warn({ code }, 'could not set the clock');
  });
}

export function initRoutes(deps: ServiceDeps): Hono<FaceEnv> {
  const caCerts = new CaCertInstaller(deps.logger);
  return new Hono<FaceEnv>().post('/init', async (c) => {
    c.header('X-Envd-Version', ENVD_COMPAT_VERSION);
    c.header('Cache-Control', 'no-store');
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    let parsed: InitBody | string = {};
    if (Buffer.from(bytes).toString('latin1').trim() !== '') {
      try {
        parsed = parseInitBody(parseJsonBody(bytes));
      } catch (err) {
        parsed = `body is not valid JSON: ${(err as Error).message}`;
      }
    }
    if (typeof parsed === 'string') return c.text(parsed, 400);
    const body = parsed;
    const { state } = deps;

    if (body.timestamp) {
      const ns = timestampNs(body.timestamp);
      // A stale or repeated init (retried by the orchestrator) is skipped, still answered 204.
      if (ns <= state.lastInitNs) return c.body(null, 204);
    }
    if (state.accessToken !== undefined) {
      if (body.accessToken === undefined || body.accessToken === null) return c.text('access token reset not authorized', 401);
      if (!safeEqual(body.accessToken, state.accessToken)) return c.text('access token validation failed', 401);
    }
    if (body.timestamp) {
      state.lastInitNs = timestampNs(body.timestamp);
      syncClock(deps, body.timestamp);
    }
    for (const [k, v] of Object.entries(body.envVars ?? {})) state.envVars.set(k, v);
    if (body.accessToken) state.accessToken = body.accessToken;
    if (body.defaultUser) state.defaultUser = body.defaultUser;
    if (body.defaultWorkdir) state.defaultWorkdir = body.defaultWorkdir;
    if (body.caBundle) await caCerts.install(body.caBundle);
    if (body.volumeMounts || body.lifecycleID) {
      deps.logger.debug({ volumeMounts: body.volumeMounts?.length ?? 0, lifecycleID: body.lifecycleID }, 'E2B infrastructure init fields ignored');
    }
    deps.logger.info({ defaultUser: state.defaultUser, defaultWorkdir: state.defaultWorkdir, envVars: Object.keys(body.envVars ?? {}) }, 'init applied');
    return c.body(null, 204);
  });
}
