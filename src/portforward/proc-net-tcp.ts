import { readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';

/** One row of /proc/net/tcp or /proc/net/tcp6: the local end of a TCP socket. */
export interface TcpSocketEntry {
  family: 4 | 6;
  /** Canonical text form (`127.0.0.1`, `::1`, `::ffff:127.0.0.1`). */
  address: string;
  port: number;
  /** The kernel's TCP state number (`TCP_LISTEN` = 0x0A). */
  state: number;
  uid: number;
  inode: number;
}

/** The kernel's TCP_LISTEN state (include/net/tcp_states.h). */
export const TCP_LISTEN = 0x0a;

/**
 * Decodes `AAAAAAAA:PPPP` (IPv4) or 32 hex digits `:PPPP` (IPv6). The kernel prints each 32-bit word of
 * the address in host byte order, the port big-endian; undefined for anything malformed.
 */
export function decodeProcAddress(field: string, family: 4 | 6, littleEndian: boolean): { address: string; port: number } | undefined {
  const m = /^([0-9A-Fa-f]+):([0-9A-Fa-f]{4})$/.exec(field);
  if (!m || m[1]!.length !== (family === 4 ? 8 : 32)) return undefined;
  const raw = Buffer.from(m[1]!, 'hex');
  if (littleEndian) {
    for (let i = 0; i < raw.length; i += 4) raw.subarray(i, i + 4).reverse();
  }
  const port = Number.parseInt(m[2]!, 16);
  if (family === 4) return { address: [...raw].join('.'), port };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(raw.readUInt16BE(i).toString(16));
  return { address: new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address, port };
}

/** Parses the text of /proc/net/tcp (family 4) or /proc/net/tcp6 (family 6); rows it cannot read are skipped. */
export function parseProcNetTcp(text: string, family: 4 | 6, littleEndian = os.endianness() === 'LE'): TcpSocketEntry[] {
  const out: TcpSocketEntry[] = [];
  for (const line of text.split('\n')) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^\d+:$/.test(f[0]!)) continue; // the header and blank lines
    const local = decodeProcAddress(f[1]!, family, littleEndian);
    const state = Number.parseInt(f[3]!, 16);
    if (!local || !/^[0-9A-Fa-f]{2}$/.test(f[3]!)) continue;
    out.push({ family, ...local, state, uid: Number(f[7]), inode: Number(f[9]) });
  }
  return out;
}

/** 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8: addresses only this machine can reach. */
export function isLoopbackAddress(address: string): boolean {
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return net.isIPv4(v4) && v4.startsWith('127.');
}

/** A TCP port someone listens on, reachable only through loopback. */
export interface LoopbackListener {
  port: number;
  /** The address to dial to reach it (an IPv4 listener is preferred when both families listen). */
  address: string;
}

/** The ports listening on loopback addresses only (a port also listening on a wider address is left out). */
export function loopbackListeners(entries: readonly TcpSocketEntry[]): LoopbackListener[] {
  const byPort = new Map<number, { loopback: TcpSocketEntry[]; wider: boolean }>();
  for (const e of entries) {
    if (e.state !== TCP_LISTEN) continue;
    const slot = byPort.get(e.port) ?? { loopback: [], wider: false };
    byPort.set(e.port, slot);
    if (isLoopbackAddress(e.address)) slot.loopback.push(e);
    else slot.wider = true;
  }
  const out: LoopbackListener[] = [];
  for (const [port, { loopback, wider }] of byPort) {
    if (wider || loopback.length === 0) continue;
    const v4 = loopback.find((e) => e.family === 4 || e.address.startsWith('::ffff:'));
    const chosen = v4 ?? loopback[0]!;
    out.push({ port, address: chosen.address.startsWith('::ffff:') ? chosen.address.slice(7) : chosen.address });
  }
  return out.sort((a, b) => a.port - b.port);
}

/** Reads both tables of the calling process's network namespace; a missing table (no IPv6) reads as empty. */
export async function readTcpTables(dir = '/proc/net'): Promise<TcpSocketEntry[]> {
  const read = async (name: string, family: 4 | 6) => {
    try {
      return parseProcNetTcp(await readFile(`${dir}/${name}`, 'utf8'), family);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  };
  const [v4, v6] = await Promise.all([read('tcp', 4), read('tcp6', 6)]);
  return [...v4, ...v6];
}
