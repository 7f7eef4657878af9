import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PortForwarder } from '../../../src/portforward/forwarder.js';
import { RelaySources } from '../../../src/portforward/relays.js';
import { createLogger } from '../../../src/log.js';

describe('RelaySources', () => {
  afterEach(() => vi.useRealTimers());

  it('knows an open relay by address and port, IPv4-mapped or not', () => {
    const r = new RelaySources();
    r.add('127.0.0.1', 5000);
    expect(r.has('127.0.0.1', 5000)).toBe(true);
    expect(r.has('::ffff:127.0.0.1', 5000)).toBe(true);
    expect(r.has('127.0.0.1', 5001)).toBe(false);
    expect(r.has(undefined, 5000)).toBe(false);
  });

  it('keeps a closed relay for the grace period, then forgets it', () => {
    vi.useFakeTimers();
    const r = new RelaySources(1000);
    r.add('::1', 6000);
    r.remove('::1', 6000);
    expect(r.has('::1', 6000)).toBe(true);
    vi.advanceTimersByTime(1001);
    expect(r.has('::1', 6000)).toBe(false);
  });
});

describe('PortForwarder relays', () => {
  it("records each relay's outgoing connection before the target reads a byte, as the target sees it", async () => {
    const relays = new RelaySources();
    const seen: boolean[] = [];
    const target = net.createServer((s) => {
      s.once('data', () => {
        seen.push(relays.has(s.remoteAddress, s.remotePort));
        s.end('ok');
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const port = (target.address() as net.AddressInfo).port;
    const forwarder = new PortForwarder({
      logger: createLogger('silent'),
      excludePorts: [],
      listeners: async () => [{ address: '127.0.0.1', port }],
      addresses: () => ['127.0.0.2'],
      relays,
    });
    try {
      await forwarder.scan();
      expect(forwarder.list()).toEqual([{ from: '127.0.0.2', port, to: '127.0.0.1' }]);
      const reply = await new Promise<string>((resolve, reject) => {
        const c = net.connect({ host: '127.0.0.2', port }, () => c.end('hello'));
        let body = '';
        c.on('data', (d: Buffer) => (body += d.toString())).on('end', () => resolve(body)).on('error', reject);
      });
      expect(reply).toBe('ok');
      expect(seen).toEqual([true]);
    } finally {
      await forwarder.close();
      await new Promise((resolve) => target.close(resolve));
    }
  });
});
