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
  it('manages cgroups under /sys/fs/cgroup unless told another root or --no-cgroups, as envd', () => {
    expect(parseConfig([], {})).toMatchObject({ config: { cgroups: true, cgroupRoot: '/sys/fs/cgroup' } });
    expect(parseConfig(['--cgroup-root', '/sys/fs/cgroup/unified'], {})).toMatchObject({ config: { cgroups: true, cgroupRoot: '/sys/fs/cgroup/unified' } });
    expect(parseConfig(['--no-cgroups'], {})).toMatchObject({ config: { cgroups: false } });
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

describe('parseConfig: the PicoD face', () => {
  it('is off by default and serves 8080 once PICOD_AUTH_PUBLIC_KEY is in the environment', () => {
    const off = parseConfig([], {});
    expect(off.kind === 'run' && off.config.picodPort).toBe(0);
    const on = parseConfig(['--workspace=/root'], { PICOD_AUTH_PUBLIC_KEY: 'pem' });
    expect(on.kind === 'run' && on.config).toMatchObject({ picodPort: 8080, workspace: '/root', picodPublicKey: 'pem' });
  });
  it('takes the port from --picod-port, then SANDBOXD_PICOD_PORT; 0 turns it off', () => {
    const flag = parseConfig(['--picod-port', '9000'], { SANDBOXD_PICOD_PORT: '9001', PICOD_AUTH_PUBLIC_KEY: 'pem' });
    expect(flag.kind === 'run' && flag.config.picodPort).toBe(9000);
    const env = parseConfig([], { SANDBOXD_PICOD_PORT: '9001' });
    expect(env.kind === 'run' && env.config.picodPort).toBe(9001);
    const zero = parseConfig(['--picod-port', '0'], { PICOD_AUTH_PUBLIC_KEY: 'pem' });
    expect(zero.kind === 'run' && zero.config.picodPort).toBe(0);
  });
});
