import { createHmac, createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startDaemon, type DaemonOptions, type RunningDaemon } from '../helpers/daemon.js';

/** An RSA key pair as AgentCube's router makes one (2048 bits; the public half as a PKIX PEM). */
export function routerKeys(): { privateKey: KeyObject; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

const b64url = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** The claims the router puts in every token: issued now, five minutes to live, its issuer and the session. */
export function routerClaims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds();
  return { exp: now + 300, iat: now, iss: 'agentcube-router', session_id: 'session-1', ...extra };
}

/** A compact JWS over `claims`, RS256/384/512-signed with `key` as the router does. */
export function signToken(key: KeyObject, claims: Record<string, unknown> = routerClaims(), alg: 'RS256' | 'RS384' | 'RS512' = 'RS256'): string {
  const input = `${b64url({ alg, typ: 'JWT' })}.${b64url(claims)}`;
  const signature = createSign(`sha${alg.slice(2)}`).update(input).sign(key);
  return `${input}.${signature.toString('base64url')}`;
}

/** The classic key-confusion forgery: HS256 with the router's public PEM as the HMAC secret. */
export function hmacWithPublicKey(publicPem: string, claims: Record<string, unknown> = routerClaims()): string {
  const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}`;
  return `${input}.${createHmac('sha256', publicPem).update(input).digest('base64url')}`;
}

/** An unsigned token (`alg: none`). */
export function unsignedToken(claims: Record<string, unknown> = routerClaims()): string {
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
}

export interface PicodDaemon {
  daemon: RunningDaemon;
  url: string;
  workspace: string;
  privateKey: KeyObject;
  publicPem: string;
  /** Authorization header with a fresh router token, as the router adds to every request it forwards. */
  auth(): Record<string, string>;
}

/** The built daemon with the PicoD face on a free port, a fresh workspace and a router key the test holds. */
export async function startPicodDaemon(opts: DaemonOptions = {}): Promise<PicodDaemon> {
  const { privateKey, publicPem } = routerKeys();
  const workspace = mkdtempSync(path.join(os.tmpdir(), 'picod-ws-'));
  const port = await freePort();
  const daemon = await startDaemon({
    ...opts,
    args: ['--picod-port', String(port), '--workspace', workspace, ...(opts.args ?? [])],
    env: { PICOD_AUTH_PUBLIC_KEY: publicPem, ...opts.env },
  });
  await daemon.waitFor((r) => r.msg === 'picod face listening', 'picod face listening');
  return {
    daemon,
    url: `http://127.0.0.1:${port}`,
    workspace,
    privateKey,
    publicPem,
    auth: () => ({ authorization: `Bearer ${signToken(privateKey)}` }),
  };
}

/** Whether a pid is a live process (a zombie awaiting its reaper counts as gone). */
export async function isRunning(pid: number): Promise<boolean> {
  const { readFile } = await import('node:fs/promises');
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
