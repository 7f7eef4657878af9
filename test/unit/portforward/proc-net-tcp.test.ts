import { describe, expect, it } from 'vitest';
import { decodeProcAddress, isLoopbackAddress, loopbackListeners, parseProcNetTcp, TCP_LISTEN } from '../../../src/portforward/proc-net-tcp.js';

// Rows as a little-endian kernel prints them (x86, arm64).
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 40101 1 0000000000000000 100 0 0 10 0
   1: 00000000:C2AF 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 40102 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F40 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 40103 1 0000000000000000 20 4 30 10 -1
   3: 0200007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 40104 1 0000000000000000 100 0 0 10 0
   4: 0A0000C0:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 40105 1 0000000000000000 100 0 0 10 0
`;

const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 50101 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:C2AF 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 50102 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 50103 1 0000000000000000 100 0 0 10 0
   3: B80D0120000000000000000010000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 50104 1 0000000000000000 100 0 0 10 0
`;

describe('parseProcNetTcp', () => {
  it('reads address, port, state, uid and inode of every IPv4 row and skips the header', () => {
    const rows = parseProcNetTcp(TCP, 4, true);
    expect(rows).toHaveLength(5);
    expect(rows[0]).toEqual({ family: 4, address: '127.0.0.1', port: 8000, state: TCP_LISTEN, uid: 1000, inode: 40101 });
    expect(rows[1]).toMatchObject({ address: '0.0.0.0', port: 49839 });
    expect(rows[2]).toMatchObject({ address: '127.0.0.1', port: 8000, state: 0x01 });
    expect(rows[3]).toMatchObject({ address: '127.0.0.2', port: 3000 });
    expect(rows[4]).toMatchObject({ address: '192.0.0.10', port: 80 });
  });

  it('reads IPv6 rows into canonical addresses, IPv4-mapped ones included', () => {
    const rows = parseProcNetTcp(TCP6, 6, true);
    expect(rows.map((r) => [r.address, r.port])).toEqual([
      ['::1', 5432],
      ['::', 49839],
      ['::ffff:127.0.0.1', 9000],
      ['2001:db8::10', 22],
    ]);
    expect(rows.every((r) => r.family === 6)).toBe(true);
  });

  it('reads addresses as a big-endian kernel prints them', () => {
    expect(decodeProcAddress('7F000001:1F40', 4, false)).toEqual({ address: '127.0.0.1', port: 8000 });
    expect(decodeProcAddress('00000000000000000000000000000001:0050', 6, false)).toEqual({ address: '::1', port: 80 });
  });

  it('skips rows it cannot read instead of failing the whole table', () => {
    const text = [
      '  sl  local_address rem_address   st',
      '   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
      '   1: 0100007F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1',
      '   2: 0100007:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1',
      '   3: 0100007F:1F40 00000000:0000 ZZ 00000000:00000000 00:00000000 00000000     0        0 4 1',
      'garbage',
      '',
    ].join('\n');
    expect(parseProcNetTcp(text, 4, true).map((r) => r.inode)).toEqual([1]);
    expect(parseProcNetTcp('', 6, true)).toEqual([]);
  });

  it('rejects an address of the wrong length for its family', () => {
    expect(decodeProcAddress('0100007F:1F40', 6, true)).toBeUndefined();
    expect(decodeProcAddress('00000000000000000000000001000000:1538', 4, true)).toBeUndefined();
  });
});

describe('isLoopbackAddress', () => {
  it('accepts 127.0.0.0/8, ::1 and IPv4-mapped loopback, nothing else', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) expect(isLoopbackAddress(a), a).toBe(true);
    for (const a of ['0.0.0.0', '::', '192.0.2.10', '::ffff:192.0.2.10', '2001:db8::1', '128.0.0.1']) expect(isLoopbackAddress(a), a).toBe(false);
  });
});

describe('loopbackListeners', () => {
  const rows = [...parseProcNetTcp(TCP, 4, true), ...parseProcNetTcp(TCP6, 6, true)];

  it('lists the ports listening on loopback only, with the address to dial', () => {
    expect(loopbackListeners(rows)).toEqual([
      { port: 3000, address: '127.0.0.2' },
      { port: 5432, address: '::1' },
      { port: 8000, address: '127.0.0.1' },
      { port: 9000, address: '127.0.0.1' },
    ]);
  });

  it('ignores sockets that are not listening', () => {
    const established = parseProcNetTcp(TCP, 4, true).filter((r) => r.state !== TCP_LISTEN);
    expect(established).toHaveLength(1);
    expect(loopbackListeners(established)).toEqual([]);
  });

  it('leaves out a port that also listens on a wider address', () => {
    const both = parseProcNetTcp(
      [
        'header',
        '   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
        '   1: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1',
      ].join('\n'),
      4,
      true,
    );
    expect(loopbackListeners(both)).toEqual([]);
  });

  it('dials IPv4 loopback when a port listens on both 127.0.0.1 and ::1', () => {
    const v4 = parseProcNetTcp('h\n   0: 0100007F:1538 00000000:0000 0A 0:0 0:0 0 0 0 7 1', 4, true);
    const v6 = parseProcNetTcp('h\n   0: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 8 1', 6, true);
    expect(loopbackListeners([...v6, ...v4])).toEqual([{ port: 5432, address: '127.0.0.1' }]);
  });
});
