import { safeEqual } from '../auth/token.js';
import { relaySources, type RelaySources } from '../portforward/relays.js';

export interface GatewayAuthInput {
  /** `--gateway-token`; when set, everyone (loopback too) must send `Authorization: Bearer <it>`. */
  gatewayToken: string | undefined;
  /** The envd face's access token (flag or `/init`): what a client beyond loopback may send instead. */
  accessToken: string | undefined;
  authorization: string | undefined;
  xAccessToken: string | undefined;
  remoteAddress: string | undefined;
  /** The peer's port: tells the port forwarder's relays (which connect from loopback) from local clients. */
  remotePort?: number | undefined;
  /** The relays to look the peer up in (default: this process's port forwarder). */
  relays?: RelaySources;
}

export type GatewayAuthDecision = { ok: true } | { ok: false; status: 401 | 403; detail: string };

export const NO_TOKEN_HINT =
  'the MCP gateway serves only loopback clients while no token is set, because a registration runs commands; ' +
  'start sandboxd with --gateway-token (or SANDBOXD_GATEWAY_TOKEN) or --access-token, or set one with POST /init on the envd port';

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopbackAddress(addr: string | undefined): boolean {
  if (!addr) return false;
  const v4 = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return /^127\.\d+\.\d+\.\d+$/.test(v4) || addr === '::1';
}

function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(.+)$/i.exec(header?.trim() ?? '');
  return m?.[1]?.trim();
}

/**
 * Who may use the gateway's routes (everything but `/health`). Loopback clients are served without a token,
 * as AgentScope's own gateway does (its host reaches the gateway through a shim inside the sandbox that sends
 * none), unless `--gateway-token` is set; anyone else needs the gateway token or, failing that, the envd token.
 */
export function authorizeGatewayRequest(i: GatewayAuthInput): GatewayAuthDecision {
  const unauthorized = (detail: string): GatewayAuthDecision => ({ ok: false, status: 401, detail });
  if (i.gatewayToken !== undefined) {
    if (safeEqual(bearer(i.authorization), i.gatewayToken)) return { ok: true };
    return unauthorized('unauthorized: send Authorization: Bearer <gateway token>');
  }
  const local = isLoopbackAddress(i.remoteAddress) && !(i.relays ?? relaySources).has(i.remoteAddress, i.remotePort);
  if (local) return { ok: true };
  if (i.accessToken !== undefined) {
    if (safeEqual(bearer(i.authorization), i.accessToken) || safeEqual(i.xAccessToken, i.accessToken)) return { ok: true };
    return unauthorized('unauthorized: send the access token as Authorization: Bearer <token> or X-Access-Token');
  }
  return { ok: false, status: 403, detail: NO_TOKEN_HINT };
}
