import type http from 'node:http';
import type http2 from 'node:http2';
import { toBinary, toJsonString, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { createContextKey, type HandlerContext } from '@connectrpc/connect';
import { encodeEnvelope } from '@connectrpc/connect/protocol';

type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** The Node response of an RPC, set by the envd routes for the handlers that write to it directly. */
export const nodeResponseKey = createContextKey<NodeResponse | undefined>(undefined);

/**
 * Writes the messages of a Connect server stream straight to the Node response, past connect-node's
 * response pipeline (about six async-generator stages and a drain/error listener pair per message:
 * ~60% of a watch event's time in the daemon, measured). Connect still does everything else: the
 * request, the headers, the first message, timeouts, the end-of-stream message and errors.
 *
 * Only after the stream's first message went out through Connect (its headers are then sent and
 * connect-node asks for the next message only once that write is done, so order holds), and only
 * for what the SDKs speak: the Connect protocol, JSON or binary, with an uncompressed response.
 * Anything else gets `undefined`, and the handler yields as usual.
 */
/** Resolves once the response can take more, or is gone. */
export function drained(res: NodeResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export class DirectStreamWriter<Desc extends DescMessage> {
  private closed = false;

  private constructor(
    private readonly res: NodeResponse,
    private readonly schema: Desc,
    private readonly json: boolean,
  ) {
    res.once('close', () => {
      this.closed = true;
    });
  }

  static after<Desc extends DescMessage>(ctx: HandlerContext, schema: Desc): DirectStreamWriter<Desc> | undefined {
    const res = ctx.values.get(nodeResponseKey);
    if (!res?.headersSent || res.writableEnded || ctx.protocolName !== 'connect' || ctx.responseHeader.has('connect-content-encoding')) return undefined;
    const type = ctx.requestHeader.get('content-type')?.split(';', 1)[0]?.trim().toLowerCase();
    if (type !== 'application/connect+json' && type !== 'application/connect+proto') return undefined;
    return new DirectStreamWriter(res, schema, type === 'application/connect+json');
  }

  /**
   * Sends one message, built by `build` unless `json` already holds its JSON form and the stream
   * speaks JSON. Resolves once the response can take more (at once unless it is backed up), or when
   * it is gone (the stream's abort signal then ends the handler).
   */
  async write(build: () => MessageShape<Desc>, json?: string): Promise<void> {
    if (this.closed || this.res.writableEnded) return;
    const payload = this.json ? Buffer.from(json ?? toJsonString(this.schema, build())) : toBinary(this.schema, build());
    if ((this.res as http.ServerResponse).write(encodeEnvelope(0, payload)) || this.closed) return;
    await drained(this.res);
  }
}
