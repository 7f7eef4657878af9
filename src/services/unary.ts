import type http from 'node:http';
import { create, isMessage, type DescMessage, type DescMethod, type DescService, type JsonReadOptions, type JsonWriteOptions, type Message } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { compressionNegotiate, createMethodSerializationLookup, validateReadWriteMaxBytes, type MethodSerializationLookup } from '@connectrpc/connect/protocol';
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  errorToJsonBytes,
  headerUnaryAcceptEncoding,
  headerUnaryContentLength,
  headerUnaryEncoding,
  parseTimeout,
} from '@connectrpc/connect/protocol-connect';
import { ACCEPT_COMPRESSION } from './compression.js';
import type { RpcCall } from './context.js';
import { header, identity, onBody } from './node-request.js';

const LIMITS = validateReadWriteMaxBytes(undefined, undefined, undefined);

type Req = http.IncomingMessage;
type Res = http.ServerResponse;
type UnaryImpl = (req: Message, call: RpcCall) => Message | Promise<Message>;

interface Route {
  output: DescMessage;
  impl: UnaryImpl;
  serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

/**
 * The unary methods of the envd services in the Connect protocol over HTTP/1.1, as both e2b SDKs call
 * them (`POST`, `application/json`; a raw Connect client may send `application/proto`): `SendInput`
 * for every PTY keystroke, `Stat`, `ListDir`, `SendSignal` and the rest. Answers byte for byte as
 * connect-node does, with its serialization, error JSON, HTTP status per code and response compression
 * (`Accept-Encoding`, from 1 KiB), but without its pipeline: per call connect-node builds two
 * `Headers` copies of the request, a handler context with three linked AbortControllers (aborted with
 * a `DOMException` after every call), a `URL`, and passes the body and the answer through async
 * iterables. The implementations read only the request's headers of their call (`RpcCall`).
 *
 * Returns false, having touched nothing, for any other request (a streaming method, GET, HTTP/2, a
 * compressed request, a content type with parameters, an invalid timeout or compression header):
 * connect-node serves those.
 */
export function unaryHandler(
  services: readonly (readonly [DescService, object])[],
  jsonOptions: Partial<JsonReadOptions & JsonWriteOptions>,
): (req: Req, res: Res) => boolean {
  const routes = new Map<string, Route>();
  for (const [service, impls] of services) {
    for (const method of service.methods as DescMethod[]) {
      const impl = (impls as Record<string, UnaryImpl | undefined>)[method.localName];
      if (method.methodKind !== 'unary' || impl === undefined) continue;
      const serialization = createMethodSerializationLookup(method, undefined, jsonOptions, LIMITS) as MethodSerializationLookup<DescMessage, DescMessage>;
      routes.set(`/${service.typeName}/${method.name}`, { output: method.output, impl: impl.bind(impls), serialization });
    }
  }

  return (req, res) => {
    if (req.method !== 'POST' || req.httpVersionMajor !== 1) return false;
    const route = routes.get((req.url ?? '').split('?', 1)[0]!);
    if (route === undefined) return false;
    const type = req.headers['content-type']?.toLowerCase();
    const binary = type === contentTypeUnaryProto;
    if (!binary && type !== contentTypeUnaryJson) return false;
    if (!identity(header(req, headerUnaryEncoding.toLowerCase()))) return false;
    if (parseTimeout(header(req, 'connect-timeout-ms'), Number.MAX_SAFE_INTEGER).error) return false;
    const compression = compressionNegotiate(ACCEPT_COMPRESSION, null, header(req, headerUnaryAcceptEncoding.toLowerCase()), headerUnaryAcceptEncoding);

    onBody(req, (body) => void serve(req, res, route, binary, compression.response, body));
    return true;
  };

  async function serve(req: Req, res: Res, route: Route, binary: boolean, compress: (typeof ACCEPT_COMPRESSION)[number] | null, input: Buffer): Promise<void> {
    const head = new Headers({ 'content-type': binary ? contentTypeUnaryProto : contentTypeUnaryJson });
    let status = 200;
    let body: Uint8Array;
    try {
      const call: RpcCall = { requestHeader: { get: (name) => header(req, name.toLowerCase()) } };
      const out = await route.impl(route.serialization.getI(binary).parse(input), call);
      body = route.serialization.getO(binary).serialize(isMessage(out, route.output) ? out : create(route.output, out));
    } catch (e) {
      const error = e instanceof ConnectError ? e : new ConnectError('internal error', Code.Internal, undefined, undefined, e);
      status = codeToHttpStatus(error.code);
      head.set('content-type', contentTypeUnaryJson);
      error.metadata.forEach((value, key) => head.set(key, value));
      body = errorToJsonBytes(error, jsonOptions);
    }
    if (compress !== null && body.byteLength >= LIMITS.compressMinBytes) {
      body = await compress.compress(body);
      head.set(headerUnaryEncoding, compress.name);
    }
    head.set(headerUnaryContentLength, String(body.byteLength));
    if (res.destroyed) return;
    res.writeHead(status, Object.fromEntries(head));
    res.end(body);
  }
}
