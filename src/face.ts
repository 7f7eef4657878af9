import { getRequestListener, type Http2Bindings, type HttpBindings } from '@hono/node-server';
import type { NodeHandler } from './listen.js';

/** The Hono env of every face's app: routes see the Node request and response as bindings. */
export type FaceEnv = { Bindings: HttpBindings | Http2Bindings };

/**
 * One face of the daemon: a request handler the daemon serves on `port` at every configured host
 * (HTTP/1.1 and h2c). `close` runs after the face's listener has stopped taking requests.
 */
export interface Face {
  name: string;
  port: number;
  handler: NodeHandler;
  close?(): Promise<void>;
}

/** The Node handler serving a Hono app. */
export function honoHandler(app: { fetch: Parameters<typeof getRequestListener>[0] }): NodeHandler {
  const listener = getRequestListener(app.fetch);
  return (req, res) => void listener(req, res);
}
