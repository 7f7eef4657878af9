import net from 'node:net';

export interface RawResponse {
  /** The status code of the first status line, or undefined when the daemon answered nothing. */
  status: number | undefined;
  /** Everything the daemon sent, as latin1 text. */
  text: string;
  /** True when the socket had to be destroyed because the daemon neither answered nor closed in time. */
  timedOut: boolean;
}

/**
 * Sends `request` bytes as they are (no Host added, nothing fixed) and reads until the daemon closes
 * the connection or `timeoutMs` passes. For requests no HTTP client would send.
 */
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : undefined, text, timedOut });
    });
    socket.write(request);
  });
}

/** An HTTP/1.x request as text: request line, headers as given (in order, duplicates kept), body. */
export function httpText(method: string, target: string, headers: [string, string][], body = '', version = '1.0'): string {
  const lines = [`${method} ${target} HTTP/${version}`, ...headers.map(([k, v]) => `${k}: ${v}`)];
  if (body !== '' || method === 'POST') lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return lines.join('\r\n') + '\r\n\r\n' + body;
}

function h2Frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK "literal without indexing" field, its name from the static table or literal (no Huffman). */
function hpackLiteral(name: number | string, value: string): Buffer {
  const v = Buffer.from(value);
  if (v.length > 126) throw new Error('value too long for this encoder');
  const namePart = typeof name === 'number' ? Buffer.from([name]) : Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name)]);
  return Buffer.concat([namePart, Buffer.from([v.length]), v]);
}

export interface RawH2Response {
  /** Header blocks seen (response headers, then trailers), each HPACK-encoded as sent. */
  headerBlocks: Buffer[];
  data: Buffer;
  /** The RST_STREAM or GOAWAY error code, if the daemon sent one. */
  errorCode: number | undefined;
}

/**
 * One prior-knowledge h2c POST written frame by frame, so it can lack what Node's client always adds:
 * :method, :scheme, :path, then `authority` as given (`[':authority' | 'host', value]`, or none at all),
 * content-type and te.
 */
export function rawH2Post(
  port: number,
  pathName: string,
  authority: [':authority' | 'host', string] | undefined,
  contentType: string,
  body: Buffer,
  timeoutMs = 10_000,
): Promise<RawH2Response> {
  const fields = Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static table 3 and 6)
    hpackLiteral(0x04, pathName), // :path (static table 4)
    ...(authority ? [hpackLiteral(authority[0] === ':authority' ? 0x01 : authority[0], authority[1])] : []),
    hpackLiteral('content-type', contentType),
    hpackLiteral('te', 'trailers'),
  ]);
  const wire = Buffer.concat([
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
    h2Frame(0x4, 0, 0, Buffer.alloc(0)), // SETTINGS
    h2Frame(0x1, 0x4, 1, fields), // HEADERS, END_HEADERS
    h2Frame(0x0, 0x1, 1, body), // DATA, END_STREAM
  ]);
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const out: RawH2Response = { headerBlocks: [], data: Buffer.alloc(0), errorCode: undefined };
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(out);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('error', done);
    socket.on('close', done);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf.readUInt8(3);
        const flags = buf.readUInt8(4);
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === 0x4 && (flags & 0x1) === 0) socket.write(h2Frame(0x4, 0x1, 0, Buffer.alloc(0))); // SETTINGS ACK
        if (type === 0x1) out.headerBlocks.push(payload);
        if (type === 0x0) out.data = Buffer.concat([out.data, payload]);
        if (type === 0x3) out.errorCode = payload.readUInt32BE(0);
        if (type === 0x7) out.errorCode = payload.readUInt32BE(4);
        if ((type === 0x1 || type === 0x0) && flags & 0x1) return done(); // END_STREAM
        if (type === 0x3 || type === 0x7) return done();
      }
    });
    socket.write(wire);
  });
}
