import type { NodeHandler } from './listen.js';
import type { Logger } from './log.js';

/**
 * A request handler whose code loads on the first request that reaches it (once; later requests reuse it).
 * While it loads, a request waits unread: its body stays in the socket, under TCP's flow control. A load
 * that fails is logged and answered 500; the next request tries again.
 */
export function lazyHandler(what: string, logger: Logger, load: () => Promise<NodeHandler>): NodeHandler {
  let handler: NodeHandler | undefined;
  let loading: Promise<NodeHandler> | undefined;
  return (req, res) => {
    if (handler) return handler(req, res);
    loading ??= load().then(
      (h) => (handler = h),
      (err: unknown) => {
        loading = undefined;
        throw err;
      },
    );
    loading.then(
      (h) => h(req, res),
      (err: unknown) => {
        logger.error({ err }, `${what} failed to load`);
        if (res.headersSent) res.destroy();
        else {
          res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
          res.end('internal error\n');
        }
      },
    );
  };
}
