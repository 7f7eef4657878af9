import { describe, expect, it } from 'vitest';
import { authorizeGatewayRequest, isLoopbackAddress, NO_TOKEN_HINT } from '../../../src/gateway/auth.js';
import { RelaySources } from '../../../src/portforward/relays.js';

const none = { gatewayToken: undefined, accessToken: undefined, authorization: undefined, xAccessToken: undefined, remoteAddress: '127.0.0.1' };

describe('isLoopbackAddress', () => {
  it('knows IPv4, IPv6 and IPv4-mapped loopback', () => {
    for (const a of ['127.0.0.1', '127.9.8.7', '::1', '::ffff:127.0.0.1']) expect(isLoopbackAddress(a), a).toBe(true);
    for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '::', '0.0.0.0', 'fe80::1', undefined, '']) expect(isLoopbackAddress(a), String(a)).toBe(false);
  });
});

describe('authorizeGatewayRequest', () => {
  it('serves loopback clients when no token is set, and refuses others with a hint', () => {
    expect(authorizeGatewayRequest(none)).toEqual({ ok: true });
    expect(authorizeGatewayRequest({ ...none, remoteAddress: '::1' })).toEqual({ ok: true });
    expect(authorizeGatewayRequest({ ...none, remoteAddress: '10.200.0.1' })).toEqual({ ok: false, status: 403, detail: NO_TOKEN_HINT });
  });

  it('requires the gateway token as a Bearer token when one is configured, from any address', () => {
    const g = { ...none, gatewayToken: 'gw', accessToken: 'envd' };
    expect(authorizeGatewayRequest(g)).toMatchObject({ ok: false, status: 401 });
    expect(authorizeGatewayRequest({ ...g, authorization: 'Bearer nope' })).toMatchObject({ ok: false, status: 401 });
    expect(authorizeGatewayRequest({ ...g, authorization: 'Bearer gw' })).toEqual({ ok: true });
    expect(authorizeGatewayRequest({ ...g, authorization: 'bearer gw', remoteAddress: '10.0.0.5' })).toEqual({ ok: true });
    // The envd token is not a substitute for a configured gateway token.
    expect(authorizeGatewayRequest({ ...g, xAccessToken: 'envd' })).toMatchObject({ ok: false, status: 401 });
    expect(authorizeGatewayRequest({ ...g, authorization: 'Bearer envd' })).toMatchObject({ ok: false, status: 401 });
  });

  it('serves loopback clients without a token even once the envd token is set (AgentScope\'s in-sandbox shim sends none)', () => {
    const e = { ...none, accessToken: 'envd' };
    expect(authorizeGatewayRequest(e)).toEqual({ ok: true });
    expect(authorizeGatewayRequest({ ...e, remoteAddress: '::ffff:127.0.0.1' })).toEqual({ ok: true });
    expect(authorizeGatewayRequest({ ...e, xAccessToken: 'wrong' })).toEqual({ ok: true });
  });

  it('does not count a connection relayed by the port forwarder as loopback', () => {
    const relays = new RelaySources();
    relays.add('127.0.0.1', 40001);
    const relayed = { ...none, remotePort: 40001, relays };
    expect(authorizeGatewayRequest(relayed)).toEqual({ ok: false, status: 403, detail: NO_TOKEN_HINT });
    expect(authorizeGatewayRequest({ ...relayed, remoteAddress: '::ffff:127.0.0.1' })).toMatchObject({ ok: false, status: 403 });
    expect(authorizeGatewayRequest({ ...relayed, accessToken: 'envd' })).toMatchObject({ ok: false, status: 401 });
    expect(authorizeGatewayRequest({ ...relayed, accessToken: 'envd', xAccessToken: 'envd' })).toEqual({ ok: true });
    // Another local client on another port is still local.
    expect(authorizeGatewayRequest({ ...relayed, remotePort: 40002 })).toEqual({ ok: true });
  });

  it('falls back to the envd access token, as Bearer or X-Access-Token', () => {
    const e = { ...none, accessToken: 'envd', remoteAddress: '10.0.0.5' };
    expect(authorizeGatewayRequest(e)).toMatchObject({ ok: false, status: 401 });
    expect(authorizeGatewayRequest({ ...e, authorization: 'Bearer envd' })).toEqual({ ok: true });
    expect(authorizeGatewayRequest({ ...e, xAccessToken: 'envd' })).toEqual({ ok: true });
    expect(authorizeGatewayRequest({ ...e, xAccessToken: 'envdx' })).toMatchObject({ ok: false, status: 401 });
    expect(authorizeGatewayRequest({ ...e, authorization: 'Basic envd' })).toMatchObject({ ok: false, status: 401 });
  });
});
