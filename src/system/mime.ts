import path from 'node:path';

// The common types Go's mime.TypeByExtension knows; everything else is sniffed or octet-stream.
const TYPES: Record<string, string> = {
  '.avif': 'image/avif',
  '.css': 'text/css; charset=utf-8',
  '.gif': 'image/gif',
  '.htm': 'text/html; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.jpeg': 'image/jpeg',
  '.jpg': 'image/jpeg',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.mjs': 'text/javascript; charset=utf-8',
  '.pdf': 'application/pdf',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.wasm': 'application/wasm',
  '.webp': 'image/webp',
  '.xml': 'text/xml; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
};

export function typeByExtension(p: string): string | undefined {
  return TYPES[path.extname(p).toLowerCase()];
}

/** A rough version of Go's content sniffing: text when the head has no binary bytes. */
export function sniffType(head: Buffer): string {
  if (head.length === 0) return 'text/plain; charset=utf-8';
  for (const b of head) {
    if (b === 0 || (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0c && b !== 0x0d && b !== 0x1b)) return 'application/octet-stream';
  }
  return 'text/plain; charset=utf-8';
}

/** `inline; filename=...` as Go's mime.FormatMediaType writes it. */
export function contentDisposition(filename: string): string {
  if (/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(filename)) return `inline; filename=${filename}`;
  if (/^[\x20-\x7e]*$/.test(filename)) return `inline; filename="${filename.replace(/(["\\])/g, '\\$1')}"`;
  return `inline; filename*=utf-8''${encodeURIComponent(filename)}`;
}
