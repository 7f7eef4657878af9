/*
 * The fuzz client: a seeded, bounded generator of malformed requests over every route and RPC of
 * the envd face. It runs as its own process inside the daemon's network namespace (the test starts
 * it with nsenter), prints one JSON summary line and exits. Every case must get an answer within
 * CASE_TIMEOUT_MS that is not a 5xx and not a Connect/gRPC code envd keeps for server faults.
 *
 * Safety: commands are only echo/true/sleep; every path a mutating call takes lies in the scratch
 * directory (names without '/' or '..'); reads stay in the scratch dir or a few harmless paths;
 * /init never carries a timestamp (the daemon would set the clock) nor an access token.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

const [port, scratch, casesText, seedText] = process.argv.slice(2) as [string, string, string, string];
const PORT = Number(port);
const CASES = Number(casesText);
const CASE_TIMEOUT_MS = 10_000;
const PARALLEL = 16;

/** mulberry32: small, seeded, good enough to pick cases. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let rand = prng(Number(seedText));
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const chance = (p: number) => rand() < p;
/** Percent-encodes every byte of the UTF-8 form (lone surrogates become U+FFFD, never a throw). */
const percent = (text: string) => [...Buffer.from(text)].map((b) => '%' + b.toString(16).padStart(2, '0')).join('');
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

const UNARY = [
  'filesystem.Filesystem/Stat', 'filesystem.Filesystem/MakeDir', 'filesystem.Filesystem/Move', 'filesystem.Filesystem/ListDir',
  'filesystem.Filesystem/Remove', 'filesystem.Filesystem/CreateWatcher', 'filesystem.Filesystem/GetWatcherEvents',
  'filesystem.Filesystem/RemoveWatcher', 'process.Process/List', 'process.Process/Update', 'process.Process/SendInput',
  'process.Process/SendSignal', 'process.Process/CloseStdin',
];
const STREAMS = ['filesystem.Filesystem/WatchDir', 'process.Process/Connect', 'process.Process/Start', 'process.Process/StreamInput'];
const HTTP_ROUTES = ['/health', '/init', '/envs', '/metrics', '/files', '/files/compose', '/', '/nope', '/files/', '//files', '/health?x=1'];

const WEIRD = ['', ' ', '\u0000', '\u202e', 'é', '\ud83d\ude00', '%00', '%2e%2e', '\\', '\n', '\t', '*', '?', '#', 'a'.repeat(300), 'ü'.repeat(100)];
/** A file name in the scratch directory: never '/', '.' or '..'. */
function name(): string {
  // No '/' and no '%' (a raw '%2e%2e' would decode to '..'): a name never leaves the scratch dir.
  const n = Array.from({ length: 1 + int(3) }, () => (chance(0.5) ? pick(WEIRD) : String.fromCharCode(97 + int(26)))).join('').replace(/[/%]/g, '_');
  return n === '' || n === '.' || n === '..' ? 'x' : n;
}
const writePath = () => (chance(0.1) ? `${scratch}/${name()}/${name()}` : `${scratch}/${name()}`);
const readPath = () => (chance(0.7) ? writePath() : pick(['', '~', '/tmp', '/etc/hostname', scratch, 'relative/x', '/no/such', '/tmp/../tmp']));

/** A value of a random JSON type, to put where a field of another type belongs; any string is a path in the scratch dir. */
function jsonValue(depth = 0): unknown {
  switch (int(depth > 2 ? 6 : 8)) {
    case 0: return null;
    case 1: return int(2) === 0;
    case 2: return pick([0, -1, 1.5, 2 ** 53, -(2 ** 31), 1e308, 4294967296]);
    case 3: return `${scratch}/${name()}`;
    case 4: return writePath();
    case 5: return bytes(int(8)).toString('base64');
    case 6: return Array.from({ length: int(3) }, () => jsonValue(depth + 1));
    default: return Object.fromEntries(Array.from({ length: int(3) }, () => [pick(['path', 'depth', 'source', 'destination', 'pid', 'tag', 'process', 'cmd', 'args', 'x']), jsonValue(depth + 1)]));
  }
}

/** A JSON body for an RPC: mostly the right fields with wrong or odd values, sometimes garbage. */
function rpcJson(method: string): Buffer {
  const fields: Record<string, unknown> = {};
  if (method.endsWith('/Start')) {
    fields.process = { cmd: pick(['echo', '/bin/echo', 'true', '/bin/true', 'sleep']), args: chance(0.5) ? [pick(['0', '0.1', 'x', ''])] : jsonValue(), cwd: chance(0.3) ? jsonValue() : undefined, envs: chance(0.3) ? jsonValue() : undefined };
    if (chance(0.2)) fields.pty = chance(0.5) ? { size: { cols: int(500), rows: int(500) } } : jsonValue();
    if (chance(0.2)) fields.tag = jsonValue();
  } else if (/Move|MakeDir|Remove/.test(method)) {
    // A missing or null path means the user's home: mutating calls get a scratch path or a wrong type.
    const wrongType = () => pick([1, true, [], {}, 1.5, [writePath()]]);
    fields.path = chance(0.8) ? writePath() : wrongType();
    fields.source = chance(0.8) ? writePath() : wrongType();
    fields.destination = chance(0.8) ? writePath() : wrongType();
  } else if (/Stat|ListDir|Watch/.test(method)) {
    fields.path = chance(0.8) ? readPath() : jsonValue();
    if (chance(0.5)) fields.depth = jsonValue();
    if (chance(0.3)) fields.recursive = jsonValue();
    if (chance(0.3)) fields.watcherId = jsonValue();
  } else {
    // Process calls by selector: pids are only ever ones the daemon's own registry knows.
    fields.process = chance(0.7) ? { selector: chance(0.5) ? { pid: int(100000) } : { tag: pick(WEIRD) } } : jsonValue();
    if (chance(0.5)) fields.signal = jsonValue();
    if (chance(0.5)) fields.input = jsonValue();
  }
  if (chance(0.2)) fields[pick(['unknown', 'depth'])] = jsonValue();
  let text = JSON.stringify(fields);
  switch (int(10)) {
    case 0: text = text.slice(0, int(text.length)); break;
    case 1: text = '\ufeff' + text; break;
    case 2: text = '['.repeat(5000 + int(50000)); break;
    case 3: return Buffer.concat([Buffer.from(text.slice(0, 5)), bytes(1 + int(4)), Buffer.from(text.slice(5))]);
    case 4: text = pick(['', 'null', '[]', '1', '"x"', '{}}', '{"a":']);
  }
  return Buffer.from(text);
}
const rpcBinary = () => (chance(0.5) ? bytes(int(64)) : Buffer.concat([Buffer.from([0x0a, int(256)]), bytes(int(32))]));

function envelope(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(chance(0.9) ? 0 : int(256), 0);
  const len = chance(0.85) ? payload.length : pick([0, payload.length + 1 + int(10), 0xffffffff, int(100)]);
  head.writeUInt32BE(len >>> 0, 1);
  const whole = Buffer.concat([head, payload]);
  return chance(0.1) ? whole.subarray(0, int(whole.length)) : whole;
}

interface Outcome { what: string; status?: number; code?: string; detail?: string; hang?: boolean }
/** Codes only a server fault gives: an answer with one of them is a finding. */
const FAULT_CODES = new Set(['internal', 'unknown', 'data_loss', '2', '13', '15']);

/**
 * One HTTP/1.1 request. A Connect stream that started (200) may rightly go on (WatchDir, Connect to
 * a running process): it counts as answered, and is read for a moment and then left.
 */
function httpRequest(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const what = `${method} ${path.slice(0, 120)} ${JSON.stringify(headers).slice(0, 160)}`;
    // Node's client refuses to send a path with spaces or controls: those go out percent-encoded.
    path = path.replace(/[^\u0021-\u007e]/g, percent);
    const req = http.request({ host: '127.0.0.1', port: PORT, method, path, headers, agent: false, timeout: CASE_TIMEOUT_MS }, (res) => {
      if (res.statusCode === 200 && /^application\/connect\+/.test(String(res.headers['content-type']))) {
        req.setTimeout(0);
        setTimeout(() => res.destroy(), 100).unref();
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size < 1 << 20) chunks.push(c);
        else res.destroy(); // a download is not what is checked; stop reading it
      });
      res.on('close', () => {
        const text = Buffer.concat(chunks).toString('latin1');
        let code = res.headers['grpc-status'] as string | undefined;
        const m = /"code":\s*"([a-z_]+)"/.exec(text);
        if (m) code = m[1];
        resolve({ what, status: res.statusCode, code, detail: text.slice(0, 5000) });
      });
    });
    req.on('timeout', () => {
      req.destroy();
      resolve({ what, hang: true });
    });
    req.on('error', (err) => resolve({ what, detail: `client error: ${err.message}` }));
    req.end(body);
  });
}

function grpcRequest(path: string, body: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const what = `gRPC ${path}`;
    const session = http2.connect(`http://127.0.0.1:${PORT}`);
    const timer = setTimeout(() => {
      session.destroy();
      resolve({ what, hang: true });
    }, CASE_TIMEOUT_MS);
    const done = (o: Outcome) => {
      clearTimeout(timer);
      session.destroy();
      resolve(o);
    };
    session.on('error', (err) => done({ what, detail: `session error: ${err.message}` }));
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': pick(['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'application/grpc-web']), te: 'trailers', ...(chance(0.2) ? { 'grpc-timeout': pick(['1S', 'x', '99999999999H', '0n']) } : {}) });
    let status: string | undefined;
    let message: string | undefined;
    const read = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] === undefined) return;
      status = String(h['grpc-status']);
      message = decodeURIComponent(String(h['grpc-message'] ?? ''));
    };
    stream.on('response', (h) => {
      read(h);
      // A stream that started (WatchDir, Connect) may rightly go on: answered; leave it shortly.
      if (h[':status'] === 200 && h['grpc-status'] === undefined) setTimeout(() => done({ what, code: status, detail: message }), 100).unref();
    });
    stream.on('trailers', read);
    stream.on('error', (err) => done({ what, detail: `stream error: ${err.message}` }));
    stream.on('close', () => done({ what, code: status, detail: message }));
    stream.resume();
    stream.end(body);
  });
}

function rawRequest(data: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const what = `raw ${JSON.stringify(data.subarray(0, 80).toString('latin1'))}`;
    const socket = net.connect(PORT, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ what, hang: true });
    }, CASE_TIMEOUT_MS);
    // Bytes back are an answer: a connection the daemon then keeps open (an h2 session after its
    // GOAWAY, until the idle timeout) is not a request left hanging.
    socket.on('data', (c: Buffer) => {
      if (chunks.length === 0) setTimeout(() => socket.destroy(), 200).unref();
      chunks.push(c);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(Buffer.concat(chunks).toString('latin1'));
      resolve({ what, status: m ? Number(m[1]) : undefined });
    });
    socket.end(data);
  });
}

const REQUEST_LINES = ['GET / HTTP/1.1', 'GET /health HTTP/1.0', 'POST /filesystem.Filesystem/Stat HTTP/1.1', 'GARBAGE', 'GET /files?path=%ZZ HTTP/1.1', 'GET http://x/health HTTP/1.1', 'OPTIONS * HTTP/1.1', 'GET /health HTTP/9.9', 'GET /../../etc/passwd HTTP/1.1', 'CONNECT 127.0.0.1:1 HTTP/1.1'];
function rawCase(): Buffer {
  switch (int(6)) {
    case 0: return bytes(int(200));
    case 1: return Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n').subarray(0, int(24));
    case 2: return Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), bytes(int(100))]);
    case 3: return Buffer.from(`POST /filesystem.Filesystem/Stat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n${pick(['zz\r\n', '5\r\n{}\r\n0\r\n\r\n', 'ffffffffff\r\n', '2\r\n{}\r\n'])}`);
    case 4: return Buffer.from(`${pick(REQUEST_LINES)}\r\n${Array.from({ length: int(5) }, () => `${pick(['Host', 'Content-Length', 'X', 'Transfer-Encoding', 'Connection'])}: ${pick(['', '-1', '99999999999', 'chunked, gzip', 'a b', '\u00ff', 'close'])}`).join('\r\n')}\r\n\r\n`, 'latin1');
    default: return Buffer.from(`GET /health HTTP/1.1\r\nHost: x\r\n${'X-Big: ' + 'a'.repeat(int(100_000))}\r\n\r\n`);
  }
}

const CONTENT_TYPES = ['application/json', 'application/proto', 'application/connect+json', 'application/connect+proto', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'text/plain', '', 'multipart/form-data; boundary=x', 'application/grpc-web+proto'];
function headers(contentType: string): Record<string, string> {
  const h: Record<string, string> = {};
  if (contentType !== '' || chance(0.5)) h['content-type'] = contentType;
  if (chance(0.3)) h['connect-protocol-version'] = pick(['1', '2', '']);
  if (chance(0.15)) h['connect-timeout-ms'] = pick(['-1', 'x', '99999999999', '0', '100']);
  if (chance(0.1)) h['content-encoding'] = pick(['gzip', 'br', 'zstd', 'identity']);
  if (chance(0.1)) h['connect-content-encoding'] = pick(['gzip', 'x']);
  if (chance(0.1)) h.authorization = pick(['Basic ' + Buffer.from('root:').toString('base64'), 'Basic !!', 'Basic ' + Buffer.from('nobody-here:').toString('base64'), 'Bearer x']);
  if (chance(0.1)) h['x-access-token'] = pick(['', 'x']);
  if (chance(0.1)) h['keepalive-ping-interval'] = pick(['0', '-5', 'x', '1']);
  if (chance(0.1)) h.origin = 'http://x';
  return h;
}

/** /files parameters; an upload always names its path (without one, files land in the home dir). */
function fileQuery(upload: boolean): string {
  const params: string[] = [];
  const add = (k: string, v: string) => params.push(`${k}=${chance(0.8) ? percent(v) : v}`);
  if (upload || chance(0.9)) add('path', writePath());
  if (chance(0.2)) add('path', writePath());
  if (chance(0.2)) add('username', pick(['root', 'nobody-here', '', '%']));
  if (chance(0.1)) add('signature', pick(['v1_x', '']));
  if (chance(0.1)) add('signature_expiration', pick(['1', '-1', 'x', '99999999999999999999']));
  return params.join('&');
}

function multipart(): { body: Buffer; type: string } {
  const boundary = pick(['xyz', '', 'a'.repeat(100), '--']);
  const parts = Array.from({ length: int(3) }, () => `--${boundary}\r\nContent-Disposition: form-data; name="${pick(['file', 'x', ''])}"; filename="${pick(WEIRD)}"\r\n\r\n${bytes(int(100)).toString('latin1')}\r\n`).join('');
  const tail = chance(0.7) ? `--${boundary}--\r\n` : '';
  return { body: Buffer.from(parts + tail, 'latin1'), type: chance(0.8) ? `multipart/form-data; boundary=${boundary}` : pick(CONTENT_TYPES) };
}

function oneCase(): Promise<Outcome> {
  switch (int(10)) {
    case 0: case 1: case 2: {
      const method = pick(UNARY);
      const type = pick(CONTENT_TYPES);
      const body = /proto/.test(type) ? rpcBinary() : rpcJson(method);
      return httpRequest(chance(0.95) ? 'POST' : pick(['GET', 'PUT', 'DELETE']), `/${method}${chance(0.1) ? '?encoding=json&message=' + percent(body.toString()) : ''}`, headers(type), body);
    }
    case 3: case 4: {
      const method = pick(STREAMS);
      const type = pick(['application/connect+json', 'application/connect+proto', 'application/json']);
      const payload = type.endsWith('proto') ? rpcBinary() : rpcJson(method);
      return httpRequest('POST', `/${method}`, headers(type), envelope(payload));
    }
    case 5: {
      const method = pick([...UNARY, ...STREAMS, 'filesystem.Filesystem/Nope', 'x/y']);
      return grpcRequest(`/${method}`, envelope(chance(0.5) ? rpcBinary() : rpcJson(method)));
    }
    case 6: {
      const route = pick(HTTP_ROUTES);
      // No HEAD: an answer without a body cannot say which envd answer a 500 is.
      const method = pick(['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);
      let body: Buffer | undefined;
      if (route === '/init') {
        const init = Object.fromEntries(Array.from({ length: int(4) }, () => [pick(['envVars', 'defaultWorkdir', 'defaultUser', 'hyperloopIP', 'x', 'accessToken']), jsonValue()]));
        // Never a token (it would lock out the rest of the run) nor a timestamp (the clock).
        if (typeof init.accessToken === 'string') delete init.accessToken;
        if (typeof init.defaultUser === 'string') init.defaultUser = 'root';
        body = chance(0.8) ? Buffer.from(JSON.stringify(init)) : rpcJson('x');
      } else if (route === '/files/compose') {
        body = Buffer.from(JSON.stringify({ source_paths: chance(0.8) ? [writePath(), writePath()] : jsonValue(), destination: chance(0.8) ? writePath() : jsonValue(), username: chance(0.2) ? jsonValue() : undefined }));
      } else if (method === 'POST' || method === 'PUT') body = bytes(int(100));
      const target = route.startsWith('/files') && route !== '/files/compose' ? `/files?${fileQuery(method !== 'GET' && method !== 'HEAD')}` : route;
      return httpRequest(method, target, headers(pick(CONTENT_TYPES)), method === 'GET' || method === 'HEAD' ? undefined : body);
    }
    case 7: {
      const { body, type } = multipart();
      return httpRequest(pick(['POST', 'PUT']), `/files?${fileQuery(true)}`, { ...headers(type), 'content-type': type }, body);
    }
    default:
      return rawRequest(rawCase());
  }
}

/**
 * Server-fault answers that are what envd itself gives for the same input, so not findings:
 * envd's upload answers 500 for a multipart body it cannot read (api/upload.go), and connect-go
 * answers internal for a compressed envelope without a negotiated encoding.
 */
const ENVD_ANSWERS = [
  /error parsing multipart form: /,
  /error reading form: /,
  /received compressed envelope, but do not know how to decompress/,
  // A name longer than NAME_MAX: envd's Stat, ListDir and /files answer Go's ENAMETOOLONG as internal/500 too.
  /ENAMETOOLONG/,
  // Concurrent cases remove what others read: stat then open loses the race; envd's download answers 500 too.
  /error opening file '.*': ENOENT/,
];

function finding(o: Outcome): string | undefined {
  if (o.hang) return 'no answer within 10 s';
  if (o.detail !== undefined && ENVD_ANSWERS.some((re) => re.test(o.detail!))) return undefined;
  // 501 with unimplemented is Connect's answer to an unknown compression, as connect-go gives it.
  if (o.status !== undefined && o.status >= 500 && !(o.status === 501 && o.code === 'unimplemented')) return `status ${o.status}`;
  if (o.code !== undefined && FAULT_CODES.has(o.code)) return `code ${o.code}`;
  return undefined;
}

async function healthy(): Promise<boolean> {
  const o = await httpRequest('GET', '/health', {});
  return o.status === 204;
}

async function main(): Promise<void> {
  const findings: { what: string; why: string; detail?: string }[] = [];
  let done = 0;
  let unhealthy = 0;
  // Each worker draws its cases from its own stream of the seed, so a run is reproducible.
  const seeds = Array.from({ length: PARALLEL }, (_, i) => Number(seedText) * 31 + i);
  const worker = async (seed: number) => {
    const mine = prng(seed);
    while (done < CASES) {
      done++;
      rand = mine;
      const o = await oneCase();
      const why = finding(o);
      if (why) findings.push({ what: o.what, why, detail: o.detail });
      if (done % 250 === 0 && !(await healthy())) unhealthy++;
    }
  };
  await Promise.all(seeds.map(worker));
  const alive = await healthy();
  process.stdout.write(JSON.stringify({ cases: done, findings: findings.slice(0, 50), findingCount: findings.length, unhealthy, alive }) + '\n');
}

main().catch((err: unknown) => {
  process.stdout.write(JSON.stringify({ error: String(err) }) + '\n');
  process.exit(1);
});
