import { promisify } from 'node:util';
import { brotliCompress, brotliCompressSync, constants, gzip, gzipSync, type BrotliOptions, type ZlibOptions } from 'node:zlib';
import { compressionBrotli, compressionGzip } from '@connectrpc/connect-node';
import type { Compression } from '@connectrpc/connect/protocol';

/**
 * Response compression for Connect clients that ask for it (`Connect-Accept-Encoding`; the e2b SDKs
 * do not, generic Connect clients such as connect-node do), tuned for streamed process output.
 *
 * connect-node compresses each message with a fresh zlib stream at the default level, on the
 * thread pool: for a stream of 64 KiB output chunks, a profile of 256 MiB of stdout spent more than
 * half the daemon's CPU in zlib setup, compression and the garbage of one stream per message
 * (33 MiB/s, against 77 MiB/s uncompressed). Here messages are compressed at the fastest level
 * (gzip 1, brotli quality 1: the ratio on text is nearly the default's, at a quarter of the CPU) and,
 * up to SYNC_LIMIT, in one synchronous call: no thread-pool round trip per message. Larger messages
 * (big listings) still go to the thread pool so the event loop is not held for long.
 * Decompressing requests is connect-node's own.
 */
const SYNC_LIMIT = 256 * 1024;

const GZIP: ZlibOptions = { level: constants.Z_BEST_SPEED };
const BROTLI: BrotliOptions = { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } };
const gzipAsync = promisify(gzip);
const brotliAsync = promisify(brotliCompress);

function owned(b: Buffer): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(b);
}

export const fastGzip: Compression = {
  name: 'gzip',
  compress: async (bytes) => owned(bytes.byteLength <= SYNC_LIMIT ? gzipSync(bytes, GZIP) : await gzipAsync(bytes, GZIP)),
  decompress: compressionGzip.decompress,
};

export const fastBrotli: Compression = {
  name: 'br',
  compress: async (bytes) => owned(bytes.byteLength <= SYNC_LIMIT ? brotliCompressSync(bytes, BROTLI) : await brotliAsync(bytes, BROTLI)),
  decompress: compressionBrotli.decompress,
};

/** What the envd face accepts and answers with, in connect-node's default order. */
export const ACCEPT_COMPRESSION: Compression[] = [fastGzip, fastBrotli];
