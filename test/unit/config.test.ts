import { describe, expect, it } from 'vitest';
import { isLoopbackOnly, parseConfig, UsageError } from '../../src/config.js';

describe('parseConfig', () => {
  it('defaults to envd ports on loopback as root', () => {
    const p = parseConfig([], {});
    expect(p).toMatchObject({ kind: 'run', config: { port: 49983, gatewayPort: 5600, hosts: ['127.0.0.1', '::1'], user: 'root' } });
  });
  it('takes tokens from flags or the environment', () => {
    const p = parseConfig(['--gateway-token', 'g'], { SANDBOXD_ACCESS_TOKEN: 'a' });
    expect(p.kind === 'run' && p.config.accessToken).toBe('a');
    expect(p.kind === 'run' && p.config.gatewayToken).toBe('g');
  });
  it('refuses bad ports and unknown flags', () => {
    expect(() => parseConfig(['--port', 'x'], {})).toThrow(UsageError);
    expect(() => parseConfig(['--port', '70000'], {})).toThrow(UsageError);
    expect(() => parseConfig(['--frobnicate'], {})).toThrow(UsageError);
  });
  it('knows loopback from everything else', () => {
    expect(isLoopbackOnly(['127.0.0.1', '::1'])).toBe(true);
    expect(isLoopbackOnly(['::'])).toBe(false);
    expect(isLoopbackOnly(['0.0.0.0'])).toBe(false);
  });
});
