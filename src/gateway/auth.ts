import { safeEqual } from '../auth/token.js';

export interface GatewayAuthInput {
  /** `--gateway-token`; when set, only `Authorization: Bearer <it>` is accepted. */
  gatewayToken: string | undefined;
  /** The envd face's access token (flag or `/init`), used when there is no gateway token. */
  accessToken: string | undefined;
  authorization: string | undefined;
  xAccessToken: string | undefined;
  remoteAddress: string | undefined;
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

/** Who may use the gateway's routes (everything but `/health`). */
export function authorizeGatewayRequest(i: GatewayAuthInput): GatewayAuthDecision {
  const unauthorized = (detail: string): GatewayAuthDecision => ({ ok: false, status: 401, detail });
  if (i.gatewayToken !== undefined) {
    if (safeEqual(bearer(i.authorization), i.gatewayToken)) return { ok: true };
    return unauthorized('unauthorized: send Authorization: Bearer <gateway token>');
  }
  if (i.accessToken !== undefined) {
    if (safeEqual(bearer(i.authorization), i.accessToken) || safeEqual(i.xAccessToken, i.accessToken)) return { ok: true };
    return unauthorized('unauthorized: send the access token as Authorization: Bearer <token> or X-Access-Token');
  }
  if (isLoopbackAddress(i.remoteAddress)) return { ok: true };
  return { ok: false, status: 403, detail: NO_TOKEN_HINT };
}
