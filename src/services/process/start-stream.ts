import type http from 'node:http';
import type { JsonReadOptions, JsonWriteOptions } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  createAsyncIterable,
  createMethodSerializationLookup,
  encodeEnvelope,
  pipe,
  transformDecompressEnvelope,
  transformParseEnvelope,
  transformSplitEnvelope,
  validateReadWriteMaxBytes,
  type Serialization,
} from '@connectrpc/connect/protocol';
import {
  contentTypeStreamJson,
  contentTypeStreamProto,
  createEndStreamSerialization,
  endStreamFlag,
  parseTimeout,
} from '@connectrpc/connect/protocol-connect';
import { drained } from '../direct-stream.js';
import { header, identity, onBody } from '../node-request.js';
import { Process, type StartRequest, type StartResponse } from '../../gen/process/process_pb.js';
import type { StartCall } from './start.js';

const START_PATH = `/${Process.typeName}/${Process.method.start.name}`;
const LIMITS = validateReadWriteMaxBytes(undefined, undefined, undefined);
/** An end stream carries no trailers (Start sets none). */
const NO_TRAILERS = new Headers();

type Req = http.IncomingMessage;
type Res = http.ServerResponse;

/**
 * The one request message of a server stream, parsed by Connect's own serialization. A body that is
 * not one plain envelope goes through Connect's own envelope transforms, for its own errors.
 */
async function requestMessage(body: Buffer, parser: Serialization<StartRequest>): Promise<StartRequest> {
  const size = body.length;
  if (size >= 5 && body[0] === 0 && body.readUInt32BE(1) === size - 5) return parser.parse(body.subarray(5));
  const it = pipe(
    createAsyncIterable([body]),
    transformSplitEnvelope(LIMITS.readMaxBytes),
    transformDecompressEnvelope(null, LIMITS.readMaxBytes),
    transformParseEnvelope(parser, endStreamFlag),
  )[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) throw new ConnectError('protocol error: missing input message for server-streaming method', Code.Unimplemented);
  if ((await it.next()).done !== true) throw new ConnectError('protocol error: received extra input message for server-streaming method', Code.Unimplemented);
  return first.value;
}

export type StartImpl = (req: StartRequest, call: StartCall) => AsyncIterable<StartResponse>;

/**
 * Process.Start in the Connect streaming protocol over HTTP/1.1, without compression: what both e2b
 * SDKs send for every command and PTY (`application/connect+json`; a raw Connect client may send
 * proto). Answers byte for byte as connect-node does, with its serialization and end-stream code,
 * but without its pipeline: per call connect-node copies the headers into Headers objects twice,
 * links three AbortControllers (and aborts them with a DOMException at the end) and passes each
 * message through a dozen down-levelled async generators; traced, that was 0.7 ms from the request
 * to the handler and 0.2–0.4 ms per event out, of a 9–10 ms `commands.run('true')`.
 *
 * Returns false, having touched nothing, for any other request (another method, HTTP/2, gRPC,
 * compression, an invalid timeout header): connect-node serves those.
 */
export function startStreamHandler(impl: StartImpl, jsonOptions: Partial<JsonReadOptions & JsonWriteOptions>): (req: Req, res: Res) => boolean {
  const serialization = createMethodSerializationLookup(Process.method.start, undefined, jsonOptions, LIMITS);
  const endStream = createEndStreamSerialization(jsonOptions);

  return (req, res) => {
    if (req.method !== 'POST' || req.httpVersionMajor !== 1 || (req.url ?? '').split('?', 1)[0] !== START_PATH) return false;
    const type = req.headers['content-type']?.toLowerCase();
    const binary = type === contentTypeStreamProto;
    if (!binary && type !== contentTypeStreamJson) return false;
    if (!identity(header(req, 'connect-content-encoding')) || !identity(header(req, 'connect-accept-encoding'))) return false;
    const timeout = parseTimeout(header(req, 'connect-timeout-ms'), Number.MAX_SAFE_INTEGER);
    if (timeout.error) return false;

    onBody(req, (body) => void serve(req, res, binary, timeout.timeoutMs, requestMessage(body, serialization.getI(binary))));
    return true;
  };

  async function serve(req: Req, res: Res, binary: boolean, timeoutMs: number | undefined, message: Promise<StartRequest>): Promise<void> {
    const abort = new AbortController();
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    const timer =
      timeoutMs === undefined ? undefined : setTimeout(() => abort.abort(new ConnectError('the operation timed out', Code.DeadlineExceeded)), timeoutMs);
    const gone = () => {
      if (!res.writableFinished) abort.abort(new ConnectError('the client went away', Code.Canceled));
    };
    res.once('close', gone);
    const serializer = serialization.getO(binary);
    const contentType = binary ? contentTypeStreamProto : contentTypeStreamJson;
    let error: ConnectError | undefined;
    let it: AsyncIterator<StartResponse> | undefined;
    try {
      const call: StartCall = {
        requestHeader: { get: (name) => header(req, name.toLowerCase()) },
        signal: abort.signal,
        timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
      };
      it = impl(await message, call)[Symbol.asyncIterator]();
      for (let r = await it.next(); r.done !== true; r = await it.next()) {
        if (res.destroyed) return;
        if (!res.headersSent) res.writeHead(200, { 'content-type': contentType });
        if (!res.write(encodeEnvelope(0, serializer.serialize(r.value)))) await drained(res);
      }
      it = undefined;
    } catch (e) {
      error = e instanceof ConnectError ? e : new ConnectError('internal error', Code.Internal, undefined, undefined, e);
    } finally {
      if (timer) clearTimeout(timer);
      // Left early (the client went away, a serialization failed): the implementation stops and detaches.
      if (it) {
        abort.abort(error ?? new ConnectError('the client went away', Code.Canceled));
        void it.return?.()?.catch(() => {});
      }
    }
    if (res.destroyed) return;
    if (!res.headersSent) res.writeHead(200, { 'content-type': contentType });
    res.end(encodeEnvelope(endStreamFlag, endStream.serialize({ metadata: NO_TRAILERS, error })));
    res.off('close', gone);
  }
}
