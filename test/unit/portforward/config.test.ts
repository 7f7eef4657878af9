import { describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../../src/config.js';

function config(argv: string[]): Config {
  const parsed = parseConfig(argv, {});
  if (parsed.kind !== 'run') throw new Error(`expected a run config, got ${parsed.kind}`);
  return parsed.config;
}

describe('the --port-forward switch', () => {
  it('is off by default on loopback, where nothing outside could use a forward', () => {
    expect(config([]).portForward).toBe(false);
    expect(config(['--host', '127.0.0.1']).portForward).toBe(false);
  });

  it('is on by default once the daemon binds beyond loopback, as in an image', () => {
    expect(config(['--host', '::']).portForward).toBe(true);
    expect(config(['--host', '127.0.0.1', '--host', '192.0.2.10']).portForward).toBe(true);
  });

  it('can be forced either way', () => {
    expect(config(['--port-forward']).portForward).toBe(true);
    expect(config(['--host', '::', '--no-port-forward']).portForward).toBe(false);
  });
});
